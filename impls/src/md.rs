//! drivers/md/md.c: md threads, the daemon protocol (md_check_recovery / md_start_sync /
//! md_do_sync / md_reap_sync_thread), the stop paths, suspend / resume, the request entry
//! and the sysfs knobs a reshape uses. v6.7 is the code path; every patch of the series is
//! tested where its hunk lands.

use crate::enter;
use crate::kernel::Change;
use crate::md_h::*;
use crate::sched::{Cx, MdId, MdThread, ThreadFn, ThreadId, World, K};
use crate::{raid1, raid10, raid5};

pub type Errno = &'static str;
pub const EBUSY: Errno = "EBUSY";
pub const EINVAL: Errno = "EINVAL";
pub const ENXIO: Errno = "ENXIO";
pub const EAGAIN: Errno = "EAGAIN";
pub const EIO: Errno = "EIO";
pub const EPERM: Errno = "EPERM";

// ---------------------------------------------------------------------------------------
// md threads (md_register_thread / md_thread / md_wakeup_thread / md_unregister_thread)

/// `md_register_thread()`: a kthread that runs `func` once per wake-up.
pub fn md_register_thread(
    k: &mut K,
    m: MdId,
    func: ThreadFn,
    name: &str,
    by: &'static str,
) -> ThreadId {
    let t = k.threads.len();
    let full = format!("{}_{}", k.mddevs[m].name, name);
    let wq = k.new_wq(format!("{full}.wqueue"));
    let task = k.spawn(full.clone(), true, move |cx| md_thread(cx, t));
    k.threads.push(MdThread {
        name: full.clone(),
        mddev: m,
        func,
        wakeup: false,
        should_stop: false,
        exited: false,
        periodic: false,
        task,
        wq,
        runs: 0,
        in_fn: false,
        last_exit: "",
        registered_by: by,
    });
    k.trace(|| format!("register thread {full} ({by})"));
    t
}

/// `md_thread()`: sleep until THREAD_WAKEUP (or the timeout of a periodic thread, which the
/// runner's tick stands for), clear it, run the function once.
fn md_thread(cx: &Cx, t: ThreadId) {
    let _frame = cx.enter("md_thread");
    let mut k = cx.lock();
    let what = format!("md_thread: waiting for wakeup ({})", k.threads[t].name);
    loop {
        let wq = k.threads[t].wq;
        k.sleep(wq, &what, |w| {
            w.threads[t].wakeup || w.threads[t].should_stop
        });
        k.threads[t].wakeup = false;
        if k.threads[t].should_stop {
            break;
        }
        k.threads[t].runs += 1;
        k.threads[t].in_fn = true;
        let m = k.threads[t].mddev;
        match k.threads[t].func {
            ThreadFn::Daemon => pers_daemon(&mut k, m),
            ThreadFn::Sync => md_do_sync(&mut k, m, t),
            ThreadFn::SyncWork => md_misc_wq_work(&mut k, m),
        }
        k.threads[t].in_fn = false;
        if k.threads[t].func == ThreadFn::SyncWork {
            k.mddevs[m].sync_work_running = false;
            let q = k.threads[t].wq;
            k.wake_up(q);
        }
        // schedule(): the kthread gives the CPU away between runs.
        k.pre();
    }
    k.threads[t].exited = true;
    let q = k.threads[t].wq;
    k.wake_up(q);
}

/// `md_wakeup_thread()`: set THREAD_WAKEUP and wake.
pub fn md_wakeup_thread(k: &mut K, t: Option<ThreadId>) {
    if let Some(t) = t {
        k.threads[t].wakeup = true;
        let q = k.threads[t].wq;
        k.wake_up(q);
    }
}

/// `md_wakeup_thread_directly()`: wake the task itself; THREAD_WAKEUP is not set, so a thread
/// whose function already returned is not run again (kernel-lifecycle.md §1.3).
pub fn md_wakeup_thread_directly(k: &mut K, t: Option<ThreadId>) {
    if let Some(t) = t {
        let task = k.threads[t].task;
        k.wake_task(task);
    }
}

/// `kthread_stop()`: ask the thread to stop, wake it, wait until its function returned.
fn kthread_stop(k: &mut K, t: ThreadId) {
    enter!(k, "kthread_stop");
    k.threads[t].should_stop = true;
    let (q, task) = (k.threads[t].wq, k.threads[t].task);
    k.wake_up(q);
    k.wake_task(task);
    let what = format!("kthread_stop: waiting for {} to exit", k.threads[t].name);
    k.sleep(q, &what, |w| w.threads[t].exited);
}

/// `md_unregister_thread(&mddev->sync_thread)`.
pub fn md_unregister_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "md_unregister_thread");
    if let Some(t) = k.mddevs[m].sync_thread.take() {
        k.pre(); // synchronize_rcu()
        kthread_stop(k, t);
    }
}

/// `md_unregister_thread(&mddev->thread)`.
pub fn md_unregister_daemon(k: &mut K, m: MdId) {
    enter!(k, "md_unregister_thread");
    if let Some(t) = k.mddevs[m].thread.take() {
        kthread_stop(k, t);
    }
}

/// The md_misc_wq work items of one mddev, run by one worker in the model: sync_work
/// (md_start_sync), then event_work (dm-raid's do_table_event). In the kernel they may run
/// on two workers at once; one worker keeps the model within loom's thread budget.
fn md_misc_wq_work(k: &mut K, m: MdId) {
    if k.mddevs[m].sync_work_pending {
        md_start_sync(k, m);
    }
    if k.mddevs[m].event_work_pending {
        k.mddevs[m].event_work_pending = false;
        crate::dm_raid::do_table_event(k, m);
    }
}

/// `queue_work(md_misc_wq, &mddev->event_work)` (set up by dm-raid's ctr only).
fn queue_event_work(k: &mut K, m: MdId) {
    if !k.mddevs[m].is_dm || k.mddevs[m].event_work_pending {
        return;
    }
    k.mddevs[m].event_work_pending = true;
    let w = k.mddevs[m].sync_work_worker;
    md_wakeup_thread(k, w);
}

/// `queue_work(md_misc_wq, &mddev->sync_work)`.
fn queue_sync_work(k: &mut K, m: MdId) {
    if k.mddevs[m].sync_work_pending {
        return;
    }
    k.mddevs[m].sync_work_pending = true;
    let w = k.mddevs[m].sync_work_worker;
    md_wakeup_thread(k, w);
}

/// `flush_work(&mddev->sync_work)`.
fn flush_sync_work(k: &mut K, m: MdId) {
    enter!(k, "flush_work");
    let Some(w) = k.mddevs[m].sync_work_worker else {
        return;
    };
    let q = k.threads[w].wq;
    k.sleep(q, "flush_work: waiting for sync_work", |w| {
        !w.mddevs[m].sync_work_pending && !w.mddevs[m].sync_work_running
    });
}

/// Creates the per-mddev sync_work worker and the daemon (`mddev->thread`, raid5d).
pub fn mddev_start_threads(k: &mut K, m: MdId) {
    let w = md_register_thread(k, m, ThreadFn::SyncWork, "sync_work", "mddev_init");
    k.mddevs[m].sync_work_worker = Some(w);
}

/// Stops the sync_work worker of a freed mddev.
pub fn mddev_free(k: &mut K, m: MdId) {
    if let Some(w) = k.mddevs[m].sync_work_worker.take() {
        kthread_stop(k, w);
    }
}

// ---------------------------------------------------------------------------------------
// locks

/// `mddev_lock_nointr()` (`mddev_lock()` too: signals are not modelled).
pub fn mddev_lock(k: &mut K, m: MdId) {
    enter!(k, "mddev_lock");
    let q = k.mddevs[m].mutex_wait;
    k.sleep(q, "mddev_lock: waiting for reconfig_mutex", |w| {
        w.mddevs[m].reconfig_mutex.is_none()
    });
    k.mddevs[m].reconfig_mutex = Some(k.cx.task);
}

/// `mddev_trylock()`.
pub fn mddev_trylock(k: &mut K, m: MdId) -> bool {
    if k.mddevs[m].reconfig_mutex.is_some() {
        return false;
    }
    k.mddevs[m].reconfig_mutex = Some(k.cx.task);
    true
}

/// `mddev_unlock()`: release, then wake the daemon and sb_wait.
pub fn mddev_unlock(k: &mut K, m: MdId) {
    k.mddevs[m].reconfig_mutex = None;
    let q = k.mddevs[m].mutex_wait;
    k.wake_up(q);
    let t = k.mddevs[m].thread;
    md_wakeup_thread(k, t);
    let q = k.mddevs[m].sb_wait;
    k.wake_up(q);
}

fn sync_mutex_lock(k: &mut K, m: MdId) {
    let q = k.mddevs[m].mutex_wait;
    k.sleep(q, "mutex_lock: waiting for sync_mutex", |w| {
        w.mddevs[m].sync_mutex.is_none()
    });
    k.mddevs[m].sync_mutex = Some(k.cx.task);
}

fn sync_mutex_unlock(k: &mut K, m: MdId) {
    k.mddevs[m].sync_mutex = None;
    let q = k.mddevs[m].mutex_wait;
    k.wake_up(q);
}

// ---------------------------------------------------------------------------------------
// md_check_recovery and the sync thread protocol

/// `unregister_sync_thread()` (added by 55a48ad2db64 / v2 p2).
fn unregister_sync_thread(k: &mut K, m: MdId) {
    if !k.test_bit(m, MD_RECOVERY_DONE) {
        // resync/recovery still happening
        k.clear_bit(m, MD_RECOVERY_NEEDED);
        return;
    }
    if k.mddevs[m].sync_thread.is_none() {
        k.warn_on(
            "warn-done-without-thread",
            "!mddev->sync_thread",
            "md_check_recovery / unregister_sync_thread",
        );
        return;
    }
    md_reap_sync_thread(k, m);
}

/// `md_check_recovery()`: the daemon's re-evaluation (kernel-lifecycle.md §2.1).
pub fn md_check_recovery(k: &mut K, m: MdId) {
    enter!(k, "md_check_recovery");
    // 1baae052cccd / v2 p1 "md: don't ignore suspended array in md_check_recovery()"
    if !k.k.has(Change::CheckRecoveryServesSuspended) && k.mddevs[m].suspended > 0 {
        return;
    }
    let rdwr = md_is_rdwr(&k.mddevs[m]);
    // 55a48ad2db64 / v2 p2 "md: don't ignore read-only array in md_check_recovery()"
    let done_counts =
        k.k.has(Change::CheckRecoveryReapsReadOnly) && k.test_bit(m, MD_RECOVERY_DONE);
    if !rdwr && !k.test_bit(m, MD_RECOVERY_NEEDED) && !done_counts {
        return;
    }
    let sb_work = k.mddevs[m].sb_flags & !(1 << MD_SB_CHANGE_PENDING) != 0;
    if !(sb_work
        || k.test_bit(m, MD_RECOVERY_NEEDED)
        || k.test_bit(m, MD_RECOVERY_DONE)
        || k.mddevs[m].safemode == 1)
    {
        return;
    }
    if !mddev_trylock(k, m) {
        return;
    }
    k.pre();
    let try_set_sync = k.mddevs[m].safemode != 0;
    if k.mddevs[m].safemode == 1 {
        k.mddevs[m].safemode = 0;
    }
    if !md_is_rdwr(&k.mddevs[m]) {
        // The read-only branch.
        if k.test_bit(m, MD_RECOVERY_RUNNING) {
            // 55a48ad2db64 / v2 p2: reap a finished thread even on a read-only array
            if k.k.has(Change::CheckRecoveryReapsReadOnly) {
                unregister_sync_thread(k, m);
            } else {
                k.clear_bit(m, MD_RECOVERY_NEEDED);
            }
            check_recovery_unlock(k, m);
            return;
        }
        k.set_bit(m, MD_RECOVERY_INTR);
        md_reap_sync_thread(k, m);
        if md_spares_need_change(k, m) {
            // md_start_sync removes / adds them (it takes its not-running exit on a
            // read-only array).
            k.set_bit(m, MD_RECOVERY_RUNNING);
            queue_sync_work(k, m);
        }
        k.clear_bit(m, MD_RECOVERY_RECOVER);
        k.clear_bit(m, MD_RECOVERY_NEEDED);
        k.mddevs[m].sb_flags &= !(1 << MD_SB_CHANGE_PENDING);
        check_recovery_unlock(k, m);
        return;
    }
    if try_set_sync && !k.mddevs[m].in_sync {
        set_in_sync(k, m);
    }
    if k.mddevs[m].sb_flags != 0 {
        md_update_sb(k, m, false);
    }
    if k.test_bit(m, MD_RECOVERY_RUNNING) {
        // v6.7 has these lines inline (DONE clear: clear NEEDED; WARN_ON_ONCE without a
        // thread; else reap); 55a48ad2db64 / v2 p2 moved them into unregister_sync_thread
        // unchanged, to share them with the read-only branch.
        unregister_sync_thread(k, m);
        check_recovery_unlock(k, m);
        return;
    }
    // Start a new pass: INTR and DONE are cleared before deciding.
    k.mddevs[m].curr_resync_completed = 0;
    k.set_bit(m, MD_RECOVERY_RUNNING);
    k.clear_bit(m, MD_RECOVERY_INTR);
    k.clear_bit(m, MD_RECOVERY_DONE);
    if k.test_and_clear_bit(m, MD_RECOVERY_NEEDED) && !k.test_bit(m, MD_RECOVERY_FROZEN) {
        queue_sync_work(k, m);
    } else {
        k.clear_bit(m, MD_RECOVERY_RUNNING);
        let q = k.resync_wait;
        k.wake_up(q);
    }
    check_recovery_unlock(k, m);
}

fn check_recovery_unlock(k: &mut K, m: MdId) {
    let q = k.mddevs[m].sb_wait;
    k.wake_up(q);
    mddev_unlock(k, m);
}

/// `md_choose_sync_action()`: what the next sync pass does. An interrupted reshape is
/// continued here (never through start_reshape).
fn md_choose_sync_action(k: &mut K, m: MdId) -> bool {
    if k.mddevs[m].reshape_position != MAX_SECTOR {
        if pers_check_reshape(k, m).is_err() {
            return false;
        }
        k.set_bit(m, MD_RECOVERY_RESHAPE);
        k.clear_bit(m, MD_RECOVERY_RECOVER);
        return true;
    }
    // A pending resync before spares, as 6.12.118 / 7.3 order it (remove_spares() first,
    // which removes nothing here: raid1_remove_disk refuses a leg that is not Faulty).
    // v6.7-v6.9 tried remove_and_add_spares first; the two orders differ when a resync is
    // pending while a leg awaits recovery: a `rebuild` table over blank superblocks (lvm's
    // takeovers from striped: rs_setup_recovery(0) and the new legs not In_sync). There
    // raid5 / raid6 skip the resync at once (degraded >= max_degraded) and raid10 / raid1
    // end in the same state either way; the model keeps the 6.12 order for all kernels.
    if k.mddevs[m].recovery_cp < MAX_SECTOR {
        remove_spares(k, m);
        k.set_bit(m, MD_RECOVERY_SYNC);
        k.clear_bit(m, MD_RECOVERY_RECOVER);
        return true;
    }
    if remove_and_add_spares(k, m) > 0 {
        k.clear_bit(m, MD_RECOVERY_SYNC);
        k.clear_bit(m, MD_RECOVERY_CHECK);
        k.clear_bit(m, MD_RECOVERY_REQUESTED);
        k.set_bit(m, MD_RECOVERY_RECOVER);
        return true;
    }
    if k.test_bit(m, MD_RECOVERY_SYNC) {
        return true;
    }
    false
}

/// `rdev_removeable()` || `rdev_addable()` for some leg. A removed leg is not addable (dm-raid
/// re-adds legs only in attempt_restore_of_faulty_devices).
fn md_spares_need_change(k: &K, m: MdId) -> bool {
    k.mddevs[m].rdevs.iter().any(|r| r.removeable())
}

/// `remove_spares()`: hot_remove_disk on every removable leg; raid1_remove_disk takes a Faulty
/// one and refuses (-EBUSY) one that is only not In_sync (no other personality of the model
/// fails a leg).
fn remove_spares(k: &mut K, m: MdId) -> u32 {
    let mut removed = 0;
    for d in 0..k.mddevs[m].rdevs.len() {
        let r = k.mddevs[m].rdevs[d];
        let taken =
            r.removeable() && pers(k, m) == Personality::Raid1 && raid1::raid1_remove_disk(k, m, d);
        if taken {
            removed += 1;
            let name = k.mddevs[m].name.clone();
            k.trace(|| format!("{name}: leg {d} removed (remove_spares)"));
        }
    }
    if removed > 0 {
        k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    }
    removed
}

/// `remove_and_add_spares(mddev, NULL)`: remove_spares, nothing is addable; the spares are
/// the legs in the array that are neither In_sync nor Faulty (`rdev_is_spare`).
fn remove_and_add_spares(k: &mut K, m: MdId) -> u32 {
    remove_spares(k, m);
    k.mddevs[m].rdevs.iter().filter(|r| r.is_spare()).count() as u32
}

/// `bio_io_error()` for a reason the kernel has too (the oracle counts it as justified);
/// returns the personality make_request's "handled".
pub fn bio_io_error(k: &mut K, bio: usize, why: String) -> bool {
    k.io_refusals.push(crate::sched::IoRefusal {
        bio,
        justified: true,
        why,
    });
    k.bios[bio].status = Some(Err(EIO));
    true
}

/// `md_error()`: the personality's error handler fails the leg; recovery is interrupted and
/// (unless the array is broken) re-evaluated; dm-raid gets a table event.
pub fn md_error(k: &mut K, m: MdId, leg: usize) {
    enter!(k, "md_error");
    if k.mddevs[m].rdevs.get(leg).is_none_or(|r| r.faulty) || !k.mddevs[m].pers {
        return;
    }
    if pers(k, m) == Personality::Raid1 {
        raid1::raid1_error(k, m, leg);
    }
    let degraded = k.mddevs[m].rdevs.iter().any(|r| !r.in_sync);
    if degraded && !k.mddevs[m].broken {
        k.set_bit(m, MD_RECOVERY_RECOVER);
    }
    k.set_bit(m, MD_RECOVERY_INTR);
    if !k.mddevs[m].broken {
        k.set_bit(m, MD_RECOVERY_NEEDED);
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
    }
    queue_event_work(k, m);
}

/// `md_start_sync()`: the sync_work item; registers the sync thread.
pub fn md_start_sync(k: &mut K, m: MdId) {
    enter!(k, "md_start_sync");
    k.mddevs[m].sync_work_pending = false;
    k.mddevs[m].sync_work_running = true;
    let suspend = md_start_sync_suspend(k, m);
    if suspend {
        mddev_suspend(k, m, false);
    }
    mddev_lock(k, m);
    let registered = md_is_rdwr(&k.mddevs[m]) && k.mddevs[m].pers && md_choose_sync_action(k, m);
    if !registered {
        // not_running:
        for b in [
            MD_RECOVERY_SYNC,
            MD_RECOVERY_RESHAPE,
            MD_RECOVERY_REQUESTED,
            MD_RECOVERY_CHECK,
            MD_RECOVERY_RUNNING,
        ] {
            k.clear_bit(m, b);
        }
        mddev_unlock(k, m);
        if suspend {
            mddev_resume(k, m, false);
        }
        let q = k.resync_wait;
        k.wake_up(q);
        if k.test_and_clear_bit(m, MD_RECOVERY_RECOVER) && k.mddevs[m].sync_thread.is_none() {
            k.trace(|| "md_start_sync: not running".into());
        }
        return;
    }
    // ad39c08186f8 / v2 p4 names the thread "reshape" when RESHAPE is set.
    let name = if k.k.has(Change::NoDirectReshapeRegistration) && k.test_bit(m, MD_RECOVERY_RESHAPE)
    {
        "reshape"
    } else {
        "resync"
    };
    let t = md_register_thread(k, m, ThreadFn::Sync, name, "md_start_sync");
    k.mddevs[m].sync_thread = Some(t);
    mddev_unlock(k, m);
    // b39113349de6: the internal resume does not set NEEDED.
    if suspend {
        mddev_resume(k, m, false);
    }
    md_wakeup_thread(k, Some(t));
}

/// Whether md_start_sync suspends the array: only when spares need changing, and since
/// 9e46c70e829b "md: Don't suspend the array for interrupted reshape" only without a reshape.
fn md_start_sync_suspend(k: &mut K, m: MdId) -> bool {
    let spares_need_change = md_spares_need_change(k, m);
    if k.k.has(Change::NoSuspendForInterruptedReshape) {
        spares_need_change && k.mddevs[m].reshape_position == MAX_SECTOR
    } else {
        spares_need_change
    }
}

/// `md_do_sync()`: the sync thread body (kernel-lifecycle.md §2.3).
pub fn md_do_sync(k: &mut K, m: MdId, t: ThreadId) {
    enter!(k, "md_do_sync");
    let rdwr = md_is_rdwr(&k.mddevs[m]);
    if k.k.has(Change::DoSyncAlwaysSetsDone) {
        // 82ec0ae59d02 / v2 p3 "md: make sure md_do_sync() will set MD_RECOVERY_DONE"
        if k.test_bit(m, MD_RECOVERY_DONE) {
            k.threads[t].last_exit = "E1 DONE";
            return;
        }
        if k.test_bit(m, MD_RECOVERY_INTR) {
            return md_do_sync_skip(k, m, t, "INTR");
        }
        if k.test_bit(m, MD_RECOVERY_WAIT) || !rdwr {
            k.set_bit(m, MD_RECOVERY_INTR);
            return md_do_sync_skip(k, m, t, "WAIT/read-only");
        }
    } else {
        if k.test_bit(m, MD_RECOVERY_DONE) || k.test_bit(m, MD_RECOVERY_WAIT) {
            let exit = if k.test_bit(m, MD_RECOVERY_DONE) {
                "E1 DONE"
            } else {
                "E2 WAIT"
            };
            k.threads[t].last_exit = exit;
            k.trace(|| format!("md_do_sync: early exit ({exit}) without setting DONE"));
            return;
        }
        if !rdwr {
            k.set_bit(m, MD_RECOVERY_INTR);
            k.threads[t].last_exit = "E3 read-only";
            k.trace(|| "md_do_sync: early exit (E3 read-only) without DONE".into());
            return;
        }
    }
    let reshape = k.test_bit(m, MD_RECOVERY_RESHAPE);
    let sync = k.test_bit(m, MD_RECOVERY_SYNC);
    k.pre();
    // E5: the conflict-arbitration loop checks INTR first.
    if k.test_bit(m, MD_RECOVERY_INTR) {
        return md_do_sync_skip(k, m, t, "E5 INTR");
    }
    k.mddevs[m].curr_resync = 3;
    let recover = !reshape && !sync && k.test_bit(m, MD_RECOVERY_RECOVER);
    // "recovery follows the physical size of devices": max_sectors = mddev->dev_sectors.
    let max = if recover {
        k.members[k.mddevs[m].members].dev_data as Sector
    } else {
        k.mddevs[m].array_sectors
    };
    let mut j: Sector = if reshape {
        0
    } else if recover {
        // "recovery follows the physical size of devices": from the lowest recovery_offset
        // of the legs that need it.
        let legs = k.mddevs[m].rdevs.iter().filter(|r| r.is_spare());
        legs.map(|r| r.recovery_offset).min().unwrap_or(MAX_SECTOR)
    } else if k.test_bit(m, MD_RECOVERY_REQUESTED)
        && !(k.k.has(Change::SyncActionResyncFirst) && k.mddevs[m].recovery_cp < MAX_SECTOR)
    {
        k.mddevs[m].resync_min
    } else if k.test_bit(m, MD_RECOVERY_REQUESTED) && k.mddevs[m].bitmap_loaded {
        // b7ee30f0efd1 "md: fix sync_action incorrect display during resync": its
        // md_sync_action (which md_do_sync asks) says resync, and md_sync_position starts a
        // resync with a bitmap at 0: dm-raid's repair after a grow passes the whole array.
        0
    } else {
        k.mddevs[m].recovery_cp.min(max)
    };
    // "mddev->curr_resync_completed = j" (0 for a reshape until its first checkpoint).
    k.mddevs[m].curr_resync_completed = j;
    if reshape {
        sole_reshaper_check(k, m);
        stale_position_check(k, m);
    }
    while j < max {
        k.pre();
        if j >= k.mddevs[m].resync_max {
            let q = k.mddevs[m].recovery_wait;
            k.sleep(q, "md_do_sync: waiting for resync_max", |w| {
                j < w.mddevs[m].resync_max || w.mddevs[m].test(MD_RECOVERY_INTR)
            });
        }
        if k.test_bit(m, MD_RECOVERY_INTR) {
            break;
        }
        let n = pers_sync_request(k, m, j, max);
        if n == 0 {
            k.set_bit(m, MD_RECOVERY_INTR);
            break;
        }
        j += n;
        k.mddevs[m].curr_resync = j;
        if !reshape {
            k.mddevs[m].curr_resync_completed = j;
        }
        if k.test_bit(m, MD_RECOVERY_INTR) {
            break;
        }
        if k.sync_throttled {
            // speed_limit_max reached: "msleep(250); goto repeat" - a unit per timer tick
            // (the work done counts as progress: a throttled sync is not a hang).
            k.progress += 1;
            let q = k.timer_wq;
            k.sleep_once(q, "md_do_sync: speed_limit_max");
        }
    }
    k.pre();
    // The final sync_request: for a reshape, end_reshape (only if INTR is clear).
    pers_sync_request(k, m, max, max);
    if reshape && k.k.has(Change::FinishReshapeInSyncThread) && k.mddevs[m].curr_resync > 3 {
        // 8ff59a72478d "md: move finish_reshape to md_finish_sync()": md_finish_sync(RESHAPE)
        // calls pers->finish_reshape here, in the sync thread, interrupted or not. Another
        // CPU may set INTR between end_reshape and it.
        k.pre();
        intr_after_end_reshape_check(k, m);
        pers_finish_reshape(k, m);
    }
    if sync && !k.test_bit(m, MD_RECOVERY_CHECK) {
        if !k.test_bit(m, MD_RECOVERY_INTR) {
            k.mddevs[m].recovery_cp = MAX_SECTOR;
        } else {
            let c = k.mddevs[m].curr_resync_completed;
            k.mddevs[m].recovery_cp = c;
        }
    } else if recover && k.mddevs[m].curr_resync > 3 {
        // Recovery done (curr_resync = MaxSector) or interrupted: each leg it served is
        // rebuilt up to curr_resync.
        if !k.test_bit(m, MD_RECOVERY_INTR) {
            k.mddevs[m].curr_resync = MAX_SECTOR;
        }
        let cur = k.mddevs[m].curr_resync;
        if k.mddevs[m].delta_disks >= 0 {
            for r in k.mddevs[m].rdevs.iter_mut() {
                if r.is_spare() && r.recovery_offset < cur {
                    r.recovery_offset = cur;
                }
            }
        }
    }
    md_do_sync_skip(k, m, t, "skip")
}

/// md_do_sync's `skip:` label: everything after it sets DONE and wakes the daemon.
fn md_do_sync_skip(k: &mut K, m: MdId, t: ThreadId, why: &'static str) {
    k.threads[t].last_exit = why;
    // A finished grow of an md (not dm) array: md_set_array_sectors(pers->size()). dm-raid
    // grows in do_table_event after the reap.
    if !k.mddevs[m].is_dm
        && k.test_bit(m, MD_RECOVERY_RESHAPE)
        && !k.test_bit(m, MD_RECOVERY_INTR)
        && k.mddevs[m].delta_disks > 0
    {
        if let Some(c) = k.mddevs[m].conf.as_ref() {
            let size = raid5::geo_size(&c.geo, c.dev_data);
            set_array_sectors(k, m, size);
        }
    }
    k.mddevs[m].sb_flags |= (1 << MD_SB_CHANGE_PENDING) | (1 << MD_SB_CHANGE_DEVS);
    if !k.test_bit(m, MD_RECOVERY_INTR) {
        k.mddevs[m].resync_min = 0;
        k.mddevs[m].resync_max = MAX_SECTOR;
    } else if k.mddevs[m].resync_min < k.mddevs[m].curr_resync_completed {
        k.mddevs[m].resync_min = k.mddevs[m].curr_resync_completed;
    }
    k.set_bit(m, MD_RECOVERY_DONE);
    k.mddevs[m].curr_resync = 0;
    let q = k.resync_wait;
    k.wake_up(q);
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
}

/// Invariant I3: at most one instance over the same members runs a reshape.
fn sole_reshaper_check(k: &mut K, m: MdId) {
    let members = k.mddevs[m].members;
    let other = (0..k.mddevs.len()).find(|&o| {
        o != m && k.mddevs[o].members == members && !k.mddevs[o].stopped && reshape_running(k, o)
    });
    if let Some(o) = other {
        let (a, b) = (k.mddevs[m].name.clone(), k.mddevs[o].name.clone());
        k.violation(
            "two-reshapers",
            format!("{a} starts reshaping while {b} still reshapes the same members"),
        );
    }
}

/// Model finding `stale-ctr-position`: this instance (re)starts its reshape from the position
/// its ctr read, but the superblock — written since by the previous table instance, which kept
/// reshaping between the table load and its postsuspend — records progress beyond it.
pub fn stale_position_check(k: &mut K, m: MdId) {
    let Some(c) = k.mddevs[m].conf.as_ref() else {
        return;
    };
    let mine = c.reshape_progress;
    let sb = &k.members[k.mddevs[m].members].sb;
    if mine == MAX_SECTOR {
        return;
    }
    // MaxSector in the superblock: the reshape even finished meanwhile.
    let behind = sb.reshape_position == MAX_SECTOR
        || if k.mddevs[m].reshape_backwards {
            sb.reshape_position < mine
        } else {
            sb.reshape_position > mine
        };
    if behind
        && !k
            .findings
            .iter()
            .any(|f| f.detail.starts_with(&k.mddevs[m].name))
    {
        let detail = format!(
            "{} restarts its reshape at {mine}; the superblock records {}",
            k.mddevs[m].name, sb.reshape_position
        );
        k.trace(|| format!("model finding stale-ctr-position: {detail}"));
        k.findings.push(crate::sched::Finding {
            rule: "stale-ctr-position",
            detail,
            mddev: m,
        });
    }
}

/// The legs this instance holds In_sync that the superblocks on disk now record as failed
/// (`failed_devices`). The model's ctr takes a leg its superblocks already record failed as
/// a rebuild (not In_sync), so these failed after the ctr read them.
pub fn legs_failed_since_ctr(k: &K, m: MdId) -> Vec<usize> {
    let failed = k.members[k.mddevs[m].members].sb.failed_devices;
    (0..k.mddevs[m].rdevs.len())
        .filter(|&d| failed & (1 << d) != 0)
        .filter(|&d| {
            let r = k.mddevs[m].rdevs[d];
            r.in_sync && !r.faulty && !r.removed
        })
        .collect()
}

/// Model finding `stale-ctr-legs` (findings/stale-ctr-legs.md): an instance about to go live
/// holds a leg In_sync that the superblocks now record as failed: another instance failed it
/// after this one's ctr read them (nothing in raid_preresume / raid_resume re-reads them), so
/// reads may come from a leg that missed writes.
pub fn stale_legs_check(k: &mut K, m: MdId) {
    let stale = legs_failed_since_ctr(k, m);
    if stale.is_empty() {
        return;
    }
    let detail = format!(
        "{} goes live with leg(s) {stale:?} In_sync; the superblocks record them failed",
        k.mddevs[m].name
    );
    k.trace(|| format!("model finding stale-ctr-legs: {detail}"));
    k.findings.push(crate::sched::Finding {
        rule: "stale-ctr-legs",
        detail,
        mddev: m,
    });
}

/// Model finding `intr-after-end-reshape`: end_reshape ran (INTR clear then), but INTR was set
/// before the reap, so raid5_finish_reshape skips committing layout and chunk: the superblock
/// then records "no reshape" with the previous layout/chunk over data in the new one.
fn intr_after_end_reshape_check(k: &mut K, m: MdId) {
    let md = &k.mddevs[m];
    let ended = md
        .conf
        .as_ref()
        .is_some_and(|c| c.reshape_progress == MAX_SECTOR)
        && md.reshape_position == MAX_SECTOR;
    let uncommitted = md.geo.layout != md.new_geo.layout || md.geo.chunk != md.new_geo.chunk;
    if ended && uncommitted && md.test(MD_RECOVERY_INTR) {
        let detail = format!(
            "{}: the reshape ended, then INTR came before the reap; layout/chunk stay uncommitted",
            md.name
        );
        k.trace(|| format!("model finding intr-after-end-reshape: {detail}"));
        // The superblock this instance writes next carries the uncommitted geometry: the
        // instance a later ctr builds from it is the one that goes wrong.
        let mem = k.mddevs[m].members;
        k.members[mem].sb_taint = Some("intr-after-end-reshape");
        k.findings.push(crate::sched::Finding {
            rule: "intr-after-end-reshape",
            detail,
            mddev: m,
        });
    }
}

/// A sync thread of `m` is inside md_do_sync's reshape loop.
fn reshape_running(w: &World, m: MdId) -> bool {
    w.mddevs[m].test(MD_RECOVERY_RESHAPE)
        && w.mddevs[m].curr_resync >= 3
        && w.mddevs[m].sync_thread.is_some_and(|t| w.threads[t].in_fn)
}

/// `md_reap_sync_thread()` (caller must hold reconfig_mutex).
pub fn md_reap_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "md_reap_sync_thread");
    if k.mddevs[m].reconfig_mutex != Some(k.cx.task) {
        let who = k.tasks[k.cx.task].name.clone();
        let name = k.mddevs[m].name.clone();
        k.violation(
            "reap-without-reconfig-mutex",
            format!("{who} reaps the sync thread of {name} without reconfig_mutex"),
        );
    }
    md_unregister_sync_thread(k, m);
    k.mddevs[m].sync_seq += 1;
    if !k.test_bit(m, MD_RECOVERY_INTR)
        && !k.test_bit(m, MD_RECOVERY_REQUESTED)
        && pers_spare_active(k, m) > 0
    {
        // "success... activate any spares".
        k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
    }
    // 8ff59a72478d "md: move finish_reshape to md_finish_sync()": not here any more.
    if k.test_bit(m, MD_RECOVERY_RESHAPE)
        && k.mddevs[m].pers
        && !k.k.has(Change::FinishReshapeInSyncThread)
    {
        intr_after_end_reshape_check(k, m);
        pers_finish_reshape(k, m);
    }
    md_update_sb(k, m, true);
    for b in [
        MD_RECOVERY_RUNNING,
        MD_RECOVERY_DONE,
        MD_RECOVERY_SYNC,
        MD_RECOVERY_RESHAPE,
        MD_RECOVERY_REQUESTED,
        MD_RECOVERY_CHECK,
    ] {
        k.clear_bit(m, b);
    }
    k.set_bit(m, MD_RECOVERY_NEEDED);
    let q = k.sync_completed;
    k.wake_up(q);
    let q = k.resync_wait;
    k.wake_up(q);
    // "if (mddev->event_work.func) queue_work(md_misc_wq, &mddev->event_work)": dm-raid
    // grows the array there (do_table_event), not in end_reshape.
    queue_event_work(k, m);
}

/// `stop_sync_thread()`: set INTR and wait for the daemon to reap (since f52f5c71f3d4).
pub fn stop_sync_thread(k: &mut K, m: MdId, locked: bool, check_seq: bool) {
    enter!(k, "stop_sync_thread");
    let seq = k.mddevs[m].sync_seq;
    if !k.test_bit(m, MD_RECOVERY_RUNNING) {
        if !locked {
            mddev_unlock(k, m);
        }
        return;
    }
    mddev_unlock(k, m);
    k.pre();
    k.set_bit(m, MD_RECOVERY_INTR);
    let st = k.mddevs[m].sync_thread;
    md_wakeup_thread_directly(k, st);
    if k.mddevs[m].sync_work_pending {
        flush_sync_work(k, m);
    }
    let q = k.resync_wait;
    k.sleep(
        q,
        "stop_sync_thread: waiting for MD_RECOVERY_RUNNING to clear",
        |w| !w.mddevs[m].test(MD_RECOVERY_RUNNING) || (check_seq && w.mddevs[m].sync_seq != seq),
    );
    if locked {
        mddev_lock(k, m);
    }
}

/// sysfs `sync_action idle` (`idle_sync_thread`).
fn idle_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "idle_sync_thread");
    sync_mutex_lock(k, m);
    k.clear_bit(m, MD_RECOVERY_FROZEN);
    mddev_lock(k, m);
    stop_sync_thread(k, m, false, true);
    sync_mutex_unlock(k, m);
}

/// sysfs `sync_action frozen` (`frozen_sync_thread`).
fn frozen_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "frozen_sync_thread");
    sync_mutex_lock(k, m);
    k.set_bit(m, MD_RECOVERY_FROZEN);
    mddev_lock(k, m);
    stop_sync_thread(k, m, false, false);
    sync_mutex_unlock(k, m);
}

/// `md_idle_sync_thread()` (exported by 7a2347e284d7 / v2 p5; reconfig_mutex held).
pub fn md_idle_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "md_idle_sync_thread");
    let v2 = k.k.has(Change::V2HelpersTakeSyncMutex);
    if v2 {
        sync_mutex_lock(k, m);
    }
    k.clear_bit(m, MD_RECOVERY_FROZEN);
    stop_sync_thread(k, m, true, true);
    if v2 {
        sync_mutex_unlock(k, m);
    }
}

/// `md_frozen_sync_thread()` (exported by 7a2347e284d7 / v2 p5; reconfig_mutex held).
pub fn md_frozen_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "md_frozen_sync_thread");
    let v2 = k.k.has(Change::V2HelpersTakeSyncMutex);
    if v2 {
        sync_mutex_lock(k, m);
    }
    k.set_bit(m, MD_RECOVERY_FROZEN);
    stop_sync_thread(k, m, true, false);
    if v2 {
        sync_mutex_unlock(k, m);
    }
}

/// `md_unfrozen_sync_thread()` (exported by 7a2347e284d7 / v2 p5; reconfig_mutex held).
pub fn md_unfrozen_sync_thread(k: &mut K, m: MdId) {
    enter!(k, "md_unfrozen_sync_thread");
    let v2 = k.k.has(Change::V2HelpersTakeSyncMutex);
    if v2 {
        sync_mutex_lock(k, m);
    }
    k.clear_bit(m, MD_RECOVERY_FROZEN);
    k.set_bit(m, MD_RECOVERY_NEEDED);
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
    if v2 {
        sync_mutex_unlock(k, m);
    }
}

/// sysfs `sync_action` (`action_store`).
pub fn action_store(k: &mut K, m: MdId, word: &str) -> Result<(), Errno> {
    enter!(k, "action_store");
    if !k.mddevs[m].pers {
        return Err(EINVAL);
    }
    match word {
        "idle" => idle_sync_thread(k, m),
        "frozen" => frozen_sync_thread(k, m),
        _ if k.test_bit(m, MD_RECOVERY_RUNNING) => return Err(EBUSY),
        "resync" => k.clear_bit(m, MD_RECOVERY_FROZEN),
        "recover" => {
            k.clear_bit(m, MD_RECOVERY_FROZEN);
            k.set_bit(m, MD_RECOVERY_RECOVER);
        }
        "reshape" => {
            mddev_lock(k, m);
            let r = if k.test_bit(m, MD_RECOVERY_RUNNING) {
                Err(EBUSY)
            } else if k.mddevs[m].reshape_position == MAX_SECTOR
                || pers_check_reshape(k, m).is_err()
            {
                k.clear_bit(m, MD_RECOVERY_FROZEN);
                pers_start_reshape(k, m)
            } else {
                // An interrupted reshape: md_check_recovery continues it.
                k.clear_bit(m, MD_RECOVERY_FROZEN);
                Ok(())
            };
            mddev_unlock(k, m);
            r?;
        }
        "check" | "repair" => {
            if word == "check" {
                k.set_bit(m, MD_RECOVERY_CHECK);
            }
            k.set_bit(m, MD_RECOVERY_REQUESTED);
            k.set_bit(m, MD_RECOVERY_SYNC);
            k.clear_bit(m, MD_RECOVERY_FROZEN);
        }
        _ => return Err(EINVAL),
    }
    if k.mddevs[m].ro == Ro::MdAutoRead {
        flush_sync_work(k, m);
        k.mddevs[m].ro = Ro::MdRdwr;
        let st = k.mddevs[m].sync_thread;
        md_wakeup_thread(k, st);
    }
    k.set_bit(m, MD_RECOVERY_NEEDED);
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
    Ok(())
}

/// sysfs `sync_max` (`max_sync_store`): limits how far md_do_sync goes.
pub fn max_sync_store(k: &mut K, m: MdId, max: Option<Sector>) {
    enter!(k, "max_sync_store");
    k.mddevs[m].resync_max = max.unwrap_or(MAX_SECTOR);
    let q = k.mddevs[m].recovery_wait;
    k.wake_up(q);
}

/// sysfs `raid_disks` (`update_raid_disks`): how mdadm --grow starts a reshape.
pub fn update_raid_disks(k: &mut K, m: MdId, disks: u32) -> Result<(), Errno> {
    enter!(k, "update_raid_disks");
    mddev_lock(k, m);
    let r = if k.test_bit(m, MD_RECOVERY_RUNNING) || k.mddevs[m].reshape_position != MAX_SECTOR {
        Err(EBUSY)
    } else {
        k.mddevs[m].delta_disks = disks as i32 - k.mddevs[m].geo.raid_disks as i32;
        k.mddevs[m].new_geo.raid_disks = disks;
        // A shrink runs backwards, a grow forwards (in place: the data offset stays).
        match k.mddevs[m].delta_disks {
            d if d < 0 => k.mddevs[m].reshape_backwards = true,
            d if d > 0 => k.mddevs[m].reshape_backwards = false,
            _ => {}
        }
        match pers_check_reshape(k, m) {
            Ok(()) => pers_start_reshape(k, m),
            Err(e) => Err(e),
        }
    };
    if r.is_err() {
        k.mddevs[m].delta_disks = 0;
        k.mddevs[m].new_geo.raid_disks = k.mddevs[m].geo.raid_disks;
    }
    mddev_unlock(k, m);
    r
}

// ---------------------------------------------------------------------------------------
// suspend / resume / IO entry

/// `mddev_suspend()`: drain active_io, then count the suspend.
pub fn mddev_suspend(k: &mut K, m: MdId, _interruptible: bool) {
    enter!(k, "mddev_suspend");
    let q = k.mddevs[m].mutex_wait;
    k.sleep(q, "mddev_suspend: waiting for suspend_mutex", |w| {
        w.mddevs[m].suspend_mutex.is_none()
    });
    k.mddevs[m].suspend_mutex = Some(k.cx.task);
    if k.mddevs[m].suspended > 0 {
        k.mddevs[m].suspended += 1;
    } else {
        // percpu_ref_kill(&mddev->active_io): new md_handle_request callers block from here.
        k.mddevs[m].active_io_dying = true;
        k.pre();
        let q = k.mddevs[m].sb_wait;
        k.sleep(q, "mddev_suspend: waiting for active_io to drain", |w| {
            w.mddevs[m].active_io == 0
        });
        // Only now: raid456 IO may wait for the reshape, so the daemon must keep working.
        k.mddevs[m].suspended += 1;
    }
    // del_timer_sync(&mddev->safemode_timer)
    k.mddevs[m].safemode_timer = false;
    k.mddevs[m].suspend_mutex = None;
    let q = k.mddevs[m].mutex_wait;
    k.wake_up(q);
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("{name} suspended"));
}

/// `__mddev_resume(mddev, recovery_needed)`.
pub fn mddev_resume(k: &mut K, m: MdId, recovery_needed: bool) {
    enter!(k, "mddev_resume");
    let q = k.mddevs[m].mutex_wait;
    k.sleep(q, "mddev_resume: waiting for suspend_mutex", |w| {
        w.mddevs[m].suspend_mutex.is_none()
    });
    k.mddevs[m].suspended = k.mddevs[m].suspended.saturating_sub(1);
    if k.mddevs[m].suspended > 0 {
        return;
    }
    k.mddevs[m].active_io_dying = false;
    let q = k.mddevs[m].sb_wait;
    k.wake_up(q);
    if recovery_needed {
        k.set_bit(m, MD_RECOVERY_NEEDED);
    }
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
    let st = k.mddevs[m].sync_thread;
    md_wakeup_thread(k, st);
    let name = k.mddevs[m].name.clone();
    k.trace(|| format!("{name} resumed"));
}

pub fn mddev_suspend_and_lock_nointr(k: &mut K, m: MdId) {
    mddev_suspend(k, m, false);
    mddev_lock(k, m);
}

pub fn mddev_unlock_and_resume(k: &mut K, m: MdId) {
    mddev_unlock(k, m);
    mddev_resume(k, m, true);
}

/// `md_write_start()`: a write first marks the array dirty. If it was clean (`in_sync`: set
/// by md_run, and by the daemon's set_in_sync once the safemode timer fired with no write
/// pending) the daemon must write the superblock (MD_SB_CHANGE_PENDING) before the write
/// goes on. Until 03e792eaf18e "md: change the return value type of md_write_start to void"
/// (v6.11) it also gave up (returned false) once `is_md_suspended()`; mddev_suspend counts
/// itself only after active_io drained and a write here holds active_io, so that exit is
/// never taken (the commit's own argument) and every kernel gets the void form.
pub fn md_write_start(k: &mut K, m: MdId, bio: usize) {
    enter!(k, "md_write_start");
    if !k.bios[bio].write {
        return;
    }
    if k.mddevs[m].ro == Ro::MdAutoRead {
        // need to switch to read/write
        switch_to_rdwr(k, m);
    }
    k.mddevs[m].writes_pending += 1;
    if k.mddevs[m].safemode == 1 {
        k.mddevs[m].safemode = 0;
    }
    if k.mddevs[m].in_sync {
        k.mddevs[m].in_sync = false;
        k.mddevs[m].sb_flags |= (1 << MD_SB_CHANGE_CLEAN) | (1 << MD_SB_CHANGE_PENDING);
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
        let name = k.mddevs[m].name.clone();
        k.trace(|| format!("{name} marked dirty by a write (MD_SB_CHANGE_PENDING)"));
    }
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "md_write_start: waiting for MD_SB_CHANGE_PENDING to clear",
        |w| w.mddevs[m].sb_flags & (1 << MD_SB_CHANGE_PENDING) == 0,
    );
}

/// A personality's request between md_write_start and md_write_end for a write (raid1 /
/// raid10's write_request and raid5_make_request each bracket their data path so).
pub fn md_write_bracket(
    k: &mut K,
    m: MdId,
    bio: usize,
    path: fn(&mut K, MdId, usize) -> bool,
) -> bool {
    let write = k.bios[bio].write;
    if write {
        md_write_start(k, m, bio);
    }
    let r = path(k, m, bio);
    if write {
        md_write_end(k, m);
    }
    r
}

/// `md_write_end()`: the write is done; (re)arm the safemode timer.
pub fn md_write_end(k: &mut K, m: MdId) {
    k.mddevs[m].writes_pending -= 1;
    if k.mddevs[m].safemode == 2 {
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
    } else {
        // safemode_delay is 200 ms for every array md_run starts (not clustered).
        k.mddevs[m].safemode_timer = true;
    }
}

/// `md_safemode_timeout()`: the timer fired; the daemon may mark the array clean.
pub fn md_safemode_timeout(k: &mut K, m: MdId) {
    k.mddevs[m].safemode_timer = false;
    k.mddevs[m].safemode = 1;
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
}

/// A timer tick (the runner's): every armed safemode timer fires.
pub fn md_timer_tick(k: &mut K) {
    for m in 0..k.mddevs.len() {
        if k.mddevs[m].safemode_timer && !k.mddevs[m].stopped {
            md_safemode_timeout(k, m);
        }
    }
}

/// `set_in_sync()`: clean again once no write is pending (MD_SB_CHANGE_CLEAN for the
/// superblock). (The kernel's returns in_sync for array_state_store, not modelled.)
fn set_in_sync(k: &mut K, m: MdId) {
    let md = &mut k.mddevs[m];
    if !md.in_sync && md.writes_pending == 0 {
        md.in_sync = true;
        md.sb_flags |= 1 << MD_SB_CHANGE_CLEAN;
    }
    if md.safemode == 1 {
        md.safemode = 0;
    }
}

/// `md_handle_request()`. Returns false only when 41425f96d7aa hands a bio back to dm.
pub fn md_handle_request(k: &mut K, m: MdId, bio: usize) -> bool {
    enter!(k, "md_handle_request");
    k.bios[bio].served_by = Some(m);
    loop {
        // check_suspended: the test is "active_io is dying", true from the start of the drain.
        let q = k.mddevs[m].sb_wait;
        k.sleep(q, "md_handle_request: waiting for resume", |w| {
            !w.mddevs[m].active_io_dying
        });
        k.mddevs[m].active_io += 1;
        let ok = pers_make_request(k, m, bio);
        k.mddevs[m].active_io -= 1;
        if k.mddevs[m].active_io == 0 {
            let q = k.mddevs[m].sb_wait;
            k.wake_up(q);
        }
        if ok {
            return true;
        }
        // 41425f96d7aa: dm-raid with prepare_suspend gets the bio back (DM_MAPIO_REQUEUE).
        if k.k.has(Change::WaitReshapeRequeues) && k.mddevs[m].is_dm {
            return false;
        }
        k.pre();
    }
}

// ---------------------------------------------------------------------------------------
// stopping

/// `__md_stop_writes()`.
pub fn __md_stop_writes(k: &mut K, m: MdId) {
    enter!(k, "__md_stop_writes");
    if !k.k.has(Change::StopSyncThreadViaDaemon) {
        // 6.6 form (before f52f5c71f3d4): freeze, flush, reap synchronously.
        k.set_bit(m, MD_RECOVERY_FROZEN);
        flush_sync_work(k, m);
        if k.mddevs[m].sync_thread.is_some() {
            k.set_bit(m, MD_RECOVERY_INTR);
            md_reap_sync_thread(k, m);
        }
    } else if !k.k.has(Change::MergedReallyFrozen) {
        // 16c4770c75b1 moved this stop into md_stop_writes.
        stop_sync_thread(k, m, true, false);
    }
    k.mddevs[m].safemode_timer = false;
    // del_timer_sync(safemode); quiesce(1); quiesce(0). cefcb9297fbd "md raid: fix hang when
    // stopping arrays with metadata through dm-raid": not for a read-only dm array.
    if !k.k.has(Change::StopWritesSkipsQuiesceForDmRo)
        || md_is_rdwr(&k.mddevs[m])
        || !k.mddevs[m].is_dm
    {
        pers_quiesce(k, m);
    }
    if md_is_rdwr(&k.mddevs[m]) && (!k.mddevs[m].in_sync || k.mddevs[m].sb_flags != 0) {
        k.mddevs[m].in_sync = true;
        md_update_sb(k, m, true);
    }
}

/// `md_stop_writes()` (dm-raid postsuspend).
pub fn md_stop_writes(k: &mut K, m: MdId) {
    enter!(k, "md_stop_writes");
    mddev_lock(k, m);
    if k.k.has(Change::MergedReallyFrozen) {
        // 16c4770c75b1 "dm-raid: really frozen sync_thread during suspend"
        k.set_bit(m, MD_RECOVERY_FROZEN);
        stop_sync_thread(k, m, true, false);
    }
    __md_stop_writes(k, m);
    mddev_unlock(k, m);
}

/// `md_stop()` (dm-raid dtr; reconfig_mutex held).
pub fn md_stop(k: &mut K, m: MdId) {
    enter!(k, "md_stop");
    __md_stop_writes(k, m);
    __md_stop(k, m);
}

/// `__md_stop()`: detach (unregister the daemon), drop the personality, clear FROZEN. It
/// never unregisters a sync thread.
pub fn __md_stop(k: &mut K, m: MdId) {
    enter!(k, "__md_stop");
    if k.mddevs[m].sync_thread.is_some() {
        let name = k.mddevs[m].name.clone();
        k.violation(
            "sync-thread-at-stop",
            format!("{name} is stopped with a registered sync thread"),
        );
    }
    md_unregister_daemon(k, m);
    k.mddevs[m].pers = false;
    k.mddevs[m].stopped = true;
    k.clear_bit(m, MD_RECOVERY_FROZEN);
}

/// `md_set_readonly()` (sysfs `array_state readonly`; reconfig_mutex held on entry).
pub fn md_set_readonly(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "md_set_readonly");
    let mut did_freeze = false;
    if !k.test_bit(m, MD_RECOVERY_FROZEN) {
        did_freeze = true;
        k.set_bit(m, MD_RECOVERY_FROZEN);
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
    }
    stop_sync_thread(k, m, false, false);
    let q = k.mddevs[m].sb_wait;
    k.sleep(
        q,
        "md_set_readonly: waiting for MD_SB_CHANGE_PENDING",
        |w| w.mddevs[m].sb_flags & (1 << MD_SB_CHANGE_PENDING) == 0,
    );
    mddev_lock(k, m);
    // open_mutex: still open by others (a sysfs write holds no opener), or a sync running.
    let err = if k.mddevs[m].openers > 0 || k.test_bit(m, MD_RECOVERY_RUNNING) {
        Err(EBUSY)
    } else {
        __md_stop_writes(k, m);
        if k.mddevs[m].ro == Ro::MdRdonly {
            Err(ENXIO)
        } else {
            k.mddevs[m].ro = Ro::MdRdonly;
            Ok(())
        }
    };
    if (k.mddevs[m].pers && err.is_ok()) || did_freeze {
        k.clear_bit(m, MD_RECOVERY_FROZEN);
        k.set_bit(m, MD_RECOVERY_NEEDED);
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
    }
    err
}

/// `restart_array()`: read-only -> read-write.
pub fn restart_array(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "restart_array");
    if !k.mddevs[m].pers {
        return Err(EINVAL);
    }
    if md_is_rdwr(&k.mddevs[m]) {
        return Err(EBUSY);
    }
    k.mddevs[m].safemode = 0;
    switch_to_rdwr(k, m);
    Ok(())
}

/// ro = MD_RDWR, MD_RECOVERY_NEEDED, wake the daemon and the sync thread: the same four
/// lines in restart_array and md_write_start's AUTO_READ switch.
fn switch_to_rdwr(k: &mut K, m: MdId) {
    k.mddevs[m].ro = Ro::MdRdwr;
    k.set_bit(m, MD_RECOVERY_NEEDED);
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
    let st = k.mddevs[m].sync_thread;
    md_wakeup_thread(k, st);
}

/// sysfs `array_state` (`array_state_store`), the words a reshape uses.
pub fn array_state_store(k: &mut K, m: MdId, word: &str) -> Result<(), Errno> {
    enter!(k, "array_state_store");
    mddev_lock(k, m);
    let r = match word {
        "readonly" => md_set_readonly(k, m),
        "read-auto" => {
            if k.mddevs[m].ro == Ro::MdRdwr {
                Err(EBUSY)
            } else {
                k.mddevs[m].ro = Ro::MdAutoRead;
                Ok(())
            }
        }
        "active" | "clean" => {
            if k.mddevs[m].ro == Ro::MdRdwr {
                Ok(())
            } else {
                restart_array(k, m)
            }
        }
        _ => Err(EINVAL),
    };
    mddev_unlock(k, m);
    r
}

// ---------------------------------------------------------------------------------------
// run / start / superblock

/// `md_run()`: wipe the recovery word (for md only since 2f03d0c2cd45), start the
/// personality, ask the daemon to look.
pub fn md_run(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "md_run");
    // 2f03d0c2cd45 "md: don't clear MD_RECOVERY_FROZEN for new dm-raid until resume"
    if !(k.k.has(Change::MdRunKeepsDmFrozen) && k.mddevs[m].is_dm) {
        k.set_recovery(m, 0);
    }
    let (level, run) = match pers(k, m) {
        Personality::Raid456 => ("raid5", "raid5_run"),
        Personality::Raid10 => ("raid10", "raid10_run"),
        Personality::Raid1 => ("raid1", "raid1_run"),
    };
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_run(k, m)?,
        Personality::Raid10 => raid10::raid10_run(k, m)?,
        Personality::Raid1 => raid1::raid1_run(k, m)?,
    }
    k.mddevs[m].safemode = 0;
    k.mddevs[m].in_sync = true;
    let daemon = md_register_thread(k, m, ThreadFn::Daemon, level, run);
    k.mddevs[m].thread = Some(daemon);
    k.set_bit(m, MD_RECOVERY_NEEDED);
    if k.mddevs[m].sb_flags != 0 {
        md_update_sb(k, m, false);
    }
    Ok(())
}

/// `md_start()`: WAIT around pers->start, then wake the sync thread.
pub fn md_start(k: &mut K, m: MdId) {
    enter!(k, "md_start");
    if pers(k, m) != Personality::Raid456 {
        // "if (mddev->pers->start)": raid1 / raid10 have none, so nothing wakes a sync
        // thread here.
        return;
    }
    k.set_bit(m, MD_RECOVERY_WAIT);
    let d = k.mddevs[m].thread;
    md_wakeup_thread(k, d);
    k.pre(); // raid5_start(): r5l_start, nothing else the lifecycle sees
    k.clear_bit(m, MD_RECOVERY_WAIT);
    let st = k.mddevs[m].sync_thread;
    md_wakeup_thread(k, st);
}

/// `bitmap_load()` side effect the lifecycle sees: the daemon runs on its timeout.
pub fn md_bitmap_load(k: &mut K, m: MdId) {
    k.mddevs[m].bitmap_loaded = true;
    if let Some(d) = k.mddevs[m].thread {
        k.threads[d].periodic = true;
    }
}

/// `do_md_run()` (md arrays): run, load the bitmap, start, wake.
pub fn do_md_run(k: &mut K, m: MdId) -> Result<(), Errno> {
    enter!(k, "do_md_run");
    mddev_lock(k, m);
    let r = md_run(k, m);
    if r.is_ok() {
        md_bitmap_load(k, m);
        md_start(k, m);
        let d = k.mddevs[m].thread;
        md_wakeup_thread(k, d);
        let st = k.mddevs[m].sync_thread;
        md_wakeup_thread(k, st);
    }
    mddev_unlock(k, m);
    r
}

/// `md_update_sb()`: write the superblock to the members (super_sync). A read-only array
/// only records that a write is due.
pub fn md_update_sb(k: &mut K, m: MdId, force: bool) {
    enter!(k, "md_update_sb");
    if !md_is_rdwr(&k.mddevs[m]) {
        if force {
            k.mddevs[m].sb_flags |= 1 << MD_SB_CHANGE_DEVS;
        }
        return;
    }
    // "First make sure individual recovery_offsets are correct": only while a recovery (not a
    // resync, not a reshape) runs.
    let done = k.mddevs[m].curr_resync_completed;
    if k.mddevs[m].delta_disks >= 0
        && k.test_bit(m, MD_RECOVERY_RUNNING)
        && k.test_bit(m, MD_RECOVERY_RECOVER)
        && !k.test_bit(m, MD_RECOVERY_RESHAPE)
    {
        for r in k.mddevs[m].rdevs.iter_mut() {
            if !r.removed && !r.faulty && !r.in_sync && done > r.recovery_offset {
                r.recovery_offset = done;
            }
        }
    }
    // super_sync(): the current and the new geometry as separate fields, delta_disks always,
    // the reshape flags from reshape_position, each leg's recovery_offset.
    let md = &k.mddevs[m];
    let mut disk_recovery_offset = [MAX_SECTOR; MAX_MEMBERS];
    let mut failed_devices = 0u32;
    for (d, r) in md.rdevs.iter().enumerate() {
        disk_recovery_offset[d] = if r.in_sync {
            MAX_SECTOR
        } else {
            r.recovery_offset
        };
        if r.faulty {
            failed_devices |= 1 << d;
        }
    }
    let reshaping = md.reshape_position != MAX_SECTOR;
    let (pos, mem) = (md.reshape_position, md.members);
    let new_sb = Superblock {
        valid: true,
        events: k.members[mem].sb.events + 1,
        num_devices: if reshaping {
            md.new_geo.raid_disks
        } else {
            md.geo.raid_disks
        },
        layout: md.geo.layout,
        chunk: md.geo.chunk,
        new_layout: md.new_geo.layout,
        new_chunk: md.new_geo.chunk,
        delta_disks: md.delta_disks,
        data_offset: md.geo.data_offset,
        new_data_offset: md.new_geo.data_offset,
        sectors: md.rdev_sectors,
        reshape_position: pos,
        reshape_backwards: reshaping && md.reshape_backwards,
        recovery_cp: md.recovery_cp,
        disk_recovery_offset,
        failed_devices,
        ended_unfinished: md.reshape_ended_unfinished,
    };
    k.members[mem].sb = new_sb;
    // The effect of a finding travels with the superblocks its instance writes (a stale
    // position or a stale geometry; a later ctr inherits it); an instance untouched by one
    // writes a clean superblock.
    k.members[mem].sb_taint = k.findings.iter().find(|f| f.mddev == m).map(|f| f.rule);
    k.mddevs[m].sb_flags &=
        !((1 << MD_SB_CHANGE_DEVS) | (1 << MD_SB_CHANGE_CLEAN) | (1 << MD_SB_CHANGE_PENDING));
    // FaultRecorded: a failure now on disk unblocks its leg (rdev->blocked_wait).
    for r in k.mddevs[m].rdevs.iter_mut() {
        if r.faulty {
            r.blocked = false;
        }
    }
    let name = k.mddevs[m].name.clone();
    k.trace(|| {
        format!(
            "{name} superblock written: reshape_position {}",
            if pos == MAX_SECTOR {
                "none".into()
            } else {
                pos.to_string()
            }
        )
    });
    // md_super_wait(): the writes are IO; other tasks run until they complete (and can
    // read the superblock from the members meanwhile).
    k.pre();
    let q = k.mddevs[m].sb_wait;
    k.wake_up(q);
    if k.test_bit(m, MD_RECOVERY_RUNNING) {
        let q = k.sync_completed;
        k.wake_up(q);
    }
}

/// `mddev_init()` + the parts of `md_alloc` the model needs.
pub fn mddev_alloc(k: &mut K, name: String, members: usize, is_dm: bool) -> MdId {
    let sb_wait = k.new_wq(format!("{name}.sb_wait"));
    let recovery_wait = k.new_wq(format!("{name}.recovery_wait"));
    let mutex_wait = k.new_wq(format!("{name}.mutexes"));
    let geo = k.members[members].sb.cur_geo();
    k.mddevs.push(Mddev {
        name,
        members,
        is_dm,
        recovery: 0,
        ro: Ro::MdRdwr,
        in_sync: true,
        sb_flags: 0,
        suspended: 0,
        active_io: 0,
        active_io_dying: false,
        suspend_mutex: None,
        reconfig_mutex: None,
        sync_mutex: None,
        open_mutex_users: 0,
        thread: None,
        sync_thread: None,
        sync_work_pending: false,
        sync_work_running: false,
        sync_work_worker: None,
        event_work_pending: false,
        sync_seq: 0,
        rdevs: vec![Rdev::IN_SYNC; geo.raid_disks as usize],
        broken: false,
        pers: false,
        conf: None,
        geo,
        new_geo: geo,
        delta_disks: 0,
        reshape_position: MAX_SECTOR,
        reshape_backwards: false,
        reshape_ended_unfinished: false,
        dm_suspending: false,
        recovery_cp: MAX_SECTOR,
        rdev_sectors: 0,
        resync_min: 0,
        resync_max: MAX_SECTOR,
        curr_resync: 0,
        curr_resync_completed: 0,
        array_sectors: 0,
        bitmap_loaded: false,
        safemode: 0,
        openers: 0,
        writes_pending: 0,
        safemode_timer: false,
        stopped: false,
        sb_wait,
        recovery_wait,
        mutex_wait,
    });
    k.raid_sets.push(None);
    let m = k.mddevs.len() - 1;
    mddev_start_threads(k, m);
    m
}

/// An md (non-dm) array assembled from its members: `mdadm --assemble` + `do_md_run`.
pub fn md_array_assemble(k: &mut K, name: String, members: usize) -> Result<MdId, Errno> {
    let m = mddev_alloc(k, name, members, false);
    let sb = k.members[members].sb.clone();
    md_load_sb(k, m, &sb);
    do_md_run(k, m)?;
    Ok(m)
}

/// Reads the superblock into the mddev (`analyse_sbs` / `super_1_validate`).
pub fn md_load_sb(k: &mut K, m: MdId, sb: &Superblock) {
    let md = &mut k.mddevs[m];
    md.geo = sb.cur_geo();
    md.new_geo = sb.new_geo();
    md.delta_disks = sb.delta_disks;
    md.reshape_position = sb.reshape_position;
    md.reshape_backwards = sb.reshape_active() && sb.reshape_backwards;
    md.recovery_cp = sb.recovery_cp;
    md.rdev_sectors = sb.sectors;
}

/// `md_finish_reshape()` (from the personality's end_reshape): each leg's data now starts at
/// its new offset, and its usable size moves by the offset change (a backward reshape, whose
/// offset grew by the reshape space, leaves the legs that much shorter).
pub fn md_finish_reshape(k: &mut K, m: MdId, new_data_offset: u32) {
    let md = &mut k.mddevs[m];
    let old = md.geo.data_offset;
    md.rdev_sectors = (md.rdev_sectors + old).saturating_sub(new_data_offset);
    md.geo.data_offset = new_data_offset;
}

/// `md_set_array_sectors()`; also lowers the members' `smallest_array` (for the oracle).
pub fn set_array_sectors(k: &mut K, m: MdId, size: Sector) {
    k.mddevs[m].array_sectors = size;
    let mem = k.mddevs[m].members;
    let low = &mut k.members[mem].smallest_array;
    *low = (*low).min(size);
}

// `mddev->pers->...`: the personality's functions.

/// Where block `b` of geometry `g` is stored: every copy's (member, slot) (the model's
/// set-up and checks; the personalities place data with their own functions).
pub fn block_slots(g: &Geo, b: Sector) -> Vec<(usize, usize)> {
    match g.layout {
        Layout::Striped => return vec![crate::dm_stripe::stripe_map_sector(g, b)],
        Layout::Linear => return vec![crate::dm_linear::linear_map_sector(g.data_offset, b)],
        _ => {}
    }
    match g.layout.personality() {
        Personality::Raid456 => vec![raid5::map_block(g, b)],
        Personality::Raid10 => raid10::raid10_find_phys(g, b).to_vec(),
        Personality::Raid1 => (0..g.raid_disks as usize)
            .map(|d| (d, g.data_offset as usize + b as usize))
            .collect(),
    }
}

/// `mddev->pers`, from the array's layout.
pub fn pers(k: &K, m: MdId) -> Personality {
    k.mddevs[m].geo.layout.personality()
}

fn pers_daemon(k: &mut K, m: MdId) {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5d(k, m),
        Personality::Raid10 => raid10::raid10d(k, m),
        Personality::Raid1 => raid1::raid1d(k, m),
    }
}

/// `pers->check_reshape`.
pub fn pers_check_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    match pers(k, m) {
        Personality::Raid456 => raid5::check_reshape(k, m),
        Personality::Raid10 => raid10::raid10_check_reshape(k, m),
        // raid1_reshape() changes the leg count at once; dm-raid never asks for it (a raid1
        // table without delta_disks sets raid_disks in the ctr) and there is no position.
        Personality::Raid1 => Err(EINVAL),
    }
}

/// `pers->start_reshape`.
pub fn pers_start_reshape(k: &mut K, m: MdId) -> Result<(), Errno> {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_start_reshape(k, m),
        Personality::Raid10 => raid10::raid10_start_reshape(k, m),
        // raid1 has no start_reshape ("if (mddev->pers->start_reshape == NULL) -EINVAL").
        Personality::Raid1 => Err(EINVAL),
    }
}

fn pers_sync_request(k: &mut K, m: MdId, j: Sector, max: Sector) -> Sector {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_sync_request(k, m, j, max),
        Personality::Raid10 => raid10::raid10_sync_request(k, m, j, max),
        Personality::Raid1 => raid1::raid1_sync_request(k, m, j, max),
    }
}

fn pers_finish_reshape(k: &mut K, m: MdId) {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_finish_reshape(k, m),
        Personality::Raid10 => raid10::raid10_finish_reshape(k, m),
        Personality::Raid1 => {}
    }
}

fn pers_make_request(k: &mut K, m: MdId, bio: usize) -> bool {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_make_request(k, m, bio),
        Personality::Raid10 => raid10::raid10_make_request(k, m, bio),
        Personality::Raid1 => raid1::raid1_make_request(k, m, bio),
    }
}

/// `pers->spare_active` (raid10's legs are always In_sync in the model).
fn pers_spare_active(k: &mut K, m: MdId) -> u32 {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_spare_active(k, m),
        Personality::Raid10 => raid10::raid10_spare_active(k, m),
        Personality::Raid1 => raid1::raid1_spare_active(k, m),
    }
}

/// `pers->quiesce`.
pub fn pers_quiesce(k: &mut K, m: MdId) {
    match pers(k, m) {
        Personality::Raid456 => raid5::raid5_quiesce(k, m),
        Personality::Raid10 => raid10::raid10_quiesce(k, m),
        Personality::Raid1 => raid1::raid1_quiesce(k, m),
    }
}

/// `pers->prepare_suspend` (5625ff8b72b0): raid456 only.
pub fn pers_prepare_suspend(k: &mut K, m: MdId) {
    if pers(k, m) == Personality::Raid456 {
        raid5::raid5_prepare_suspend(k, m);
    }
}
