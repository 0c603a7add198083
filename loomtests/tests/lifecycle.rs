//! loom checks of small set-ups: one dm-raid instance (its daemon, sync_work worker and sync
//! thread) and one user thread issuing dm ioctls — within loom's 5 threads. Post-fix kernels
//! must show no deadlock and no broken invariant in any interleaving up to the preemption bound
//! (LOOM_MAX_PREEMPTIONS, default 2 here); v6.7 must deadlock (H1).
//!
//! Under loom there is no timer: a hang is a state where every thread is blocked, which loom
//! reports as a deadlock.

use md_model::dm::{dm_create, dm_remove, do_resume, table_load, target_message};
use md_model::dm_raid::Table;
use md_model::md_h::*;
use md_model::sched::{run_task, Cx, Sys, World};
use md_model::sync::{thread, Arc, Mutex};
use md_model::Kernel;

fn world(kernel: &str, resync: bool) -> Arc<Sys> {
    let mut w = World::new(Kernel::parse(kernel).unwrap(), false);
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

/// Runs `user` as the one user thread, then ends every kernel thread; returns the broken rules.
fn model(kernel: &'static str, resync: bool, user: fn(&Cx)) -> Vec<String> {
    let sys = world(kernel, resync);
    {
        let cx = Cx::new(sys.clone(), 0);
        let mut k = cx.lock();
        dm_create(&mut k, "lv", 0);
    }
    let task = sys.world.lock().unwrap().add_task("lvm".into(), false);
    let s2 = sys.clone();
    let h = thread::spawn(move || run_task(s2, task, user));
    h.join().unwrap();
    {
        let mut w = sys.world.lock().unwrap();
        w.abort = true;
        w.wake_all();
    }
    loop {
        let w = sys.world.lock().unwrap();
        if w.tasks.iter().skip(1).all(|t| t.finished) {
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

fn activate_then_remove(cx: &Cx) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
    // Let the resync start before lvchange -an.
    k.pre();
    let _ = dm_remove(&mut k, 0);
}

fn check_then_idle(cx: &Cx) {
    let mut k = cx.lock();
    table_load(&mut k, 0, &table()).unwrap();
    do_resume(&mut k, 0).unwrap();
    // `lvchange --syncaction check`, then `--syncaction idle` once the check thread exists (or
    // already ended): a clean array, so an interrupted check is not restarted and the set-up
    // stays within loom's 5 threads.
    target_message(&mut k, 0, "check").unwrap();
    let m = k.dms[0].live.unwrap();
    while k.mddevs[m].sync_thread.is_none() && k.mddevs[m].sync_seq == 0 {
        k.yield_now();
    }
    let _ = target_message(&mut k, 0, "idle");
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

/// Checks `f` under loom with preemption bound `n` (LOOM_MAX_PREEMPTIONS overrides) and prints
/// the interleavings explored and the time.
fn check(name: &str, n: usize, f: impl Fn() + Sync + Send + 'static) {
    use std::sync::atomic::Ordering::Relaxed;
    ITERATIONS.store(0, Relaxed);
    let start = std::time::Instant::now();
    bounded(n).check(move || {
        ITERATIONS.fetch_add(1, Relaxed);
        f()
    });
    println!(
        "loom {name}: {} interleavings, {:.1}s",
        ITERATIONS.load(Relaxed),
        start.elapsed().as_secs_f64()
    );
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
                let v = model(k, true, activate_then_remove);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
    }
}

#[test]
fn h1_remove_during_resync_deadlocks_v6_7() {
    let msg = panics_of(|| {
        bounded(2).check(|| {
            model("v6.7", true, activate_then_remove);
        })
    });
    assert!(
        msg.contains("deadlock; threads"),
        "v6.7 should deadlock (H1), got: {msg}"
    );
}

#[test]
fn m1_idle_message_during_check_post_fix_is_clean() {
    for k in ["v6.7+v2", "v6.9"] {
        check(
            &format!("M1 idle message during check, {k}, bound 1"),
            1,
            move || {
                let v = model(k, false, check_then_idle);
                assert!(v.is_empty(), "{k}: {v:?}");
            },
        );
    }
}
