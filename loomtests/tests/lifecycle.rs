//! loom checks of small set-ups: one array (a dm-raid instance or an md array: its daemon,
//! sync_work worker and one sync thread) and one or two user threads — within loom's 5
//! threads, which also means a set-up may start at most one sync thread. Post-fix kernels must
//! show no deadlock and no broken invariant in any interleaving up to the preemption bound
//! (LOOM_MAX_PREEMPTIONS overrides the per-test bound); v6.7 must deadlock (H1, H3) and
//! v6.7+p1,p3 too (H2).
//!
//! Under loom there is no timer: a hang is a state where every thread is blocked, which loom
//! reports as a deadlock.

use md_model::dm::{dm_create, dm_remove, dm_suspend, do_resume, table_load, target_message};
use md_model::dm_raid::Table;
use md_model::md::{action_store, array_state_store, md_array_assemble};
use md_model::md_h::*;
use md_model::sched::{run_task, Cx, Sys, ThreadFn, World};
use md_model::sync::{thread, Arc, Mutex};
use md_model::Kernel;

fn world(kernel: &str, resync: bool) -> Arc<Sys> {
    let mut w = World::new(Kernel::parse(kernel).unwrap(), false);
    w.abort_on_violation = true;
    let geo = Geo {
        raid_disks: 3,
        layout: Layout::Ls,
        chunk: 1,
        data_offset: 0,
    };
    w.members.push(Members {
        name: "lv".into(),
        sb: Superblock::new(geo, resync),
        dev_data: 2,
        dev_blocks: 4,
        disks: vec![vec![0; 4]; 4],
        origin: vec![vec![(0, 0); 4]; 4],
    });
    w.add_task("main".into(), true);
    Arc::new(Sys {
        world: Mutex::new(w),
    })
}

fn table() -> Table {
    Table {
        layout: Layout::Ls,
        legs: 3,
        chunk: 1,
        delta_disks: 0,
        data_offset: None,
        nosync: false,
    }
}

#[derive(Clone, Copy)]
enum Array {
    /// A dm-raid device `lv` with no table yet (the user thread loads one).
    Dm,
    /// An assembled md array `md0` (running: its daemon exists).
    Md,
}

/// Runs `user` on a user thread and, when given, `racer` on the main thread at the same time;
/// then ends every kernel thread; returns the broken rules.
fn model(
    kernel: &'static str,
    array: Array,
    resync: bool,
    user: fn(&Cx),
    racer: Option<fn(&Cx)>,
) -> Vec<String> {
    let sys = world(kernel, resync);
    {
        let cx = Cx::new(sys.clone(), 0);
        let mut k = cx.lock();
        match array {
            Array::Dm => {
                dm_create(&mut k, "lv", 0);
            }
            Array::Md => {
                md_array_assemble(&mut k, "md0".into(), 0).unwrap();
            }
        }
    }
    let task = sys.world.lock().unwrap().add_task("lvm".into(), false);
    let s2 = sys.clone();
    let h = thread::spawn(move || run_task(s2, task, user));
    if let Some(racer) = racer {
        run_task(sys.clone(), 0, racer);
    }
    h.join().unwrap();
    {
        let mut w = sys.world.lock().unwrap();
        w.abort = true;
        w.wake_all();
    }
    loop {
        let w = sys.world.lock().unwrap();
        if w.tasks.iter().skip(1).all(|t| t.finished) {
            if w.threads.iter().any(|t| t.func == ThreadFn::Sync) {
                SYNC_STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            return w
                .violations
                .iter()
                .map(|v| format!("{}: {}", v.rule, v.detail))
                .collect();
        }
        drop(w);
        thread::yield_now();
    }
}

fn dm_model(kernel: &'static str, resync: bool, user: fn(&Cx)) -> Vec<String> {
    model(kernel, Array::Dm, resync, user, None)
}

fn activate_then_remove(cx: &Cx) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
    // Let the resync start before lvchange -an.
    k.pre();
    let _ = dm_remove(&mut k, 0);
}

/// `lvchange --syncaction check`, then `stop` once the check thread exists (or already
/// ended): a clean array, so an interrupted check is not restarted and the set-up stays within
/// loom's 5 threads.
fn check_then(cx: &Cx, stop: fn(&mut md_model::sched::K)) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
    target_message(&mut k, 0, "check").unwrap();
    let m = k.dms[0].live.unwrap();
    while k.mddevs[m].sync_thread.is_none() && k.mddevs[m].sync_seq == 0 {
        k.yield_now();
    }
    stop(&mut k);
}

fn check_then_idle(cx: &Cx) {
    check_then(cx, |k| {
        let _ = target_message(k, 0, "idle");
    });
}

fn check_then_frozen(cx: &Cx) {
    check_then(cx, |k| {
        let _ = target_message(k, 0, "frozen");
    });
}

fn check_then_remove(cx: &Cx) {
    check_then(cx, |k| {
        let _ = dm_remove(k, 0);
    });
}

/// `dmsetup suspend` right after the resume that asks for a resync, i.e. racing the daemon and
/// the sync_work worker that start the sync thread; then `dmsetup remove` (a resume would start
/// a second sync thread: more than loom's 5 threads).
fn activate_suspend_remove(cx: &Cx) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
    // Back to user space between the two ioctls: a preemption point.
    k.pre();
    let _ = dm_suspend(&mut k, 0, false);
    let _ = dm_remove(&mut k, 0);
}

fn activate(cx: &Cx) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
}

/// `dmsetup message lv 0 frozen` from a second process, racing the resume (ENXIO / EINVAL
/// before the table is live is fine: only hangs and broken invariants count).
fn message_frozen(cx: &Cx) {
    let mut k = cx.lock();
    let _ = target_message(&mut k, 0, "frozen");
}

/// H2's set-up (corpus/h2-read-only-array-never-reaped.md-sysfs.scn): an md array made
/// read-only, then asked to reshape, then frozen.
fn readonly_reshape_frozen(cx: &Cx) {
    let mut k = cx.lock();
    let _ = array_state_store(&mut k, 0, "readonly");
    let _ = action_store(&mut k, 0, "reshape");
    let _ = action_store(&mut k, 0, "frozen");
}

/// Runs `f`, which must panic; returns every panic message seen meanwhile (loom's deadlock
/// panic is followed by a second one from its own thread teardown, so the payload that
/// reaches catch_unwind is not always the first message).
fn panics_of(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
    static SEEN: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());
    SEEN.lock().unwrap().clear();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|info| {
        SEEN.lock().unwrap().push_str(&format!("{info}\n"));
    }));
    let r = std::panic::catch_unwind(f);
    std::panic::set_hook(prev);
    assert!(r.is_err(), "expected the model to fail");
    let seen = SEEN.lock().unwrap().clone();
    seen
}

static ITERATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Interleavings in which a sync thread was registered: a race test must see both kinds.
static SYNC_STARTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Checks `f` under loom with preemption bound `n` (LOOM_MAX_PREEMPTIONS overrides) and prints
/// the interleavings explored and the time.
/// Returns (interleavings, interleavings in which a sync thread was started).
fn check(name: &str, n: usize, f: impl Fn() + Sync + Send + 'static) -> (usize, usize) {
    use std::sync::atomic::Ordering::Relaxed;
    ITERATIONS.store(0, Relaxed);
    SYNC_STARTED.store(0, Relaxed);
    let start = std::time::Instant::now();
    bounded(n).check(move || {
        ITERATIONS.fetch_add(1, Relaxed);
        f()
    });
    let (runs, started) = (ITERATIONS.load(Relaxed), SYNC_STARTED.load(Relaxed));
    println!(
        "loom {name}: {runs} interleavings ({started} with a sync thread started), {:.1}s",
        start.elapsed().as_secs_f64()
    );
    (runs, started)
}

fn bounded(n: usize) -> loom::model::Builder {
    let mut b = loom::model::Builder::new();
    let env = std::env::var("LOOM_MAX_PREEMPTIONS")
        .ok()
        .and_then(|v| v.parse().ok());
    b.preemption_bound = Some(env.unwrap_or(n));
    b.max_branches = 200_000;
    b
}

#[test]
fn h1_remove_during_resync_never_deadlocks_post_fix() {
    for k in ["v6.7+v2", "v6.9"] {
        check(
            &format!("H1 lvchange -an during resync, {k}, bound 2"),
            2,
            move || {
                let v = dm_model(k, true, activate_then_remove);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
    }
}

#[test]
fn h1_remove_during_resync_deadlocks_v6_7() {
    let msg = panics_of(|| {
        bounded(2).check(|| {
            dm_model("v6.7", true, activate_then_remove);
        })
    });
    assert!(
        msg.contains("deadlock; threads"),
        "v6.7 should deadlock (H1), got: {msg}"
    );
    println!("loom H1 lvchange -an during resync, v6.7: deadlock found");
}

#[test]
fn m1_idle_message_during_check_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        check(
            &format!("M1 idle message during check, {k}, bound 1"),
            1,
            move || {
                let v = dm_model(k, false, check_then_idle);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
    }
}

#[test]
fn frozen_or_remove_during_check_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        for (what, user) in [
            ("frozen message", check_then_frozen as fn(&Cx)),
            ("remove", check_then_remove),
        ] {
            check(
                &format!("{what} during check, {k}, bound 1"),
                1,
                move || {
                    let v = dm_model(k, false, user);
                    assert!(v.is_empty(), "{k}: {v:?}");
                },
            );
        }
    }
}

#[test]
fn suspend_racing_sync_start_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        let (runs, started) = check(
            &format!("suspend racing the resync start, {k}, bound 2"),
            2,
            move || {
                let v = dm_model(k, true, activate_suspend_remove);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
        // Both orders must be explored, or the test races nothing.
        assert!(0 < started && started < runs, "{k}: {started} of {runs}");
    }
}

#[test]
fn resume_racing_message_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        let (runs, started) = check(
            &format!("resume racing a frozen message, {k}, bound 1"),
            1,
            move || {
                let v = model(k, Array::Dm, true, activate, Some(message_frozen));
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
        assert!(0 < started && started < runs, "{k}: {started} of {runs}");
    }
}

#[test]
fn h2_readonly_reshape_frozen_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        check(
            &format!("H2/H3 md readonly + reshape + frozen, {k}, bound 2"),
            2,
            move || {
                let v = model(k, Array::Md, false, readonly_reshape_frozen, None);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
    }
}

#[test]
fn h2_h3_readonly_reshape_frozen_deadlocks_pre_fix() {
    // v6.7: H3 (the reshape thread never sets DONE); v6.7+p1,p3: H2 (a read-only array is
    // never reaped). The verdict runner classifies the two; loom sees a deadlock in both.
    for k in ["v6.7", "v6.7+p1,p3"] {
        let msg = panics_of(move || {
            bounded(2).check(move || {
                model(k, Array::Md, false, readonly_reshape_frozen, None);
            })
        });
        assert!(
            msg.contains("deadlock; threads"),
            "{k} should deadlock, got: {msg}"
        );
        println!("loom H2/H3 md readonly + reshape + frozen, {k}: deadlock found");
    }
}

#[test]
fn suspend_racing_sync_start_deadlocks_v6_7() {
    // The remove after the suspend: the sync thread that started before the suspend is never
    // reaped (H1).
    let msg = panics_of(|| {
        bounded(2).check(|| {
            dm_model("v6.7", true, activate_suspend_remove);
        })
    });
    assert!(
        msg.contains("deadlock; threads"),
        "v6.7 should deadlock (H1), got: {msg}"
    );
    println!("loom suspend racing the resync start, then remove, v6.7: deadlock found");
}

#[test]
fn m1_idle_message_during_check_v6_7_reaps_without_reconfig_mutex() {
    // The run ends at the broken invariant (World::abort_on_violation): after the reap the
    // v6.7 daemon would spin on RUNNING|DONE without a sync thread.
    let msg = panics_of(|| {
        bounded(1).check(|| {
            let v = dm_model("v6.7", false, check_then_idle);
            assert!(v.is_empty(), "v6.7: {v:?}");
        })
    });
    assert!(
        msg.contains("reap-without-reconfig-mutex"),
        "v6.7 should reap without reconfig_mutex (M1), got: {msg}"
    );
    println!("loom M1 idle message during check, v6.7: reap-without-reconfig-mutex found");
}
