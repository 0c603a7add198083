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
        sb: Superblock::new(geo, 2, resync),
        dev_data: 2,
        dev_blocks: 4,
        disks: vec![vec![0; 4]; 4],
        origin: vec![vec![(0, 0); 4]; 4],
        sb_taint: None,
        smallest_array: u64::MAX,
        failing: 0,
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
        rebuild: 0,
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
    let m = k.dms[0].live_md().unwrap();
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

/// A set-up: the array, whether it needs its initial resync, the user thread's ops and the
/// optional second user (on the main thread).
#[derive(Clone, Copy)]
struct Setup {
    array: Array,
    resync: bool,
    user: fn(&Cx),
    racer: Option<fn(&Cx)>,
}

impl Setup {
    fn dm(resync: bool, user: fn(&Cx)) -> Setup {
        Setup {
            array: Array::Dm,
            resync,
            user,
            racer: None,
        }
    }

    /// One interleaving under `kernel`; no rule may break.
    fn run(self, kernel: &'static str) {
        let v = model(kernel, self.array, self.resync, self.user, self.racer);
        assert!(v.is_empty(), "{kernel}: {v:?}");
    }
}

/// Post-fix kernels (`v6.7+v2`, `v6.9`, `v7.3`): no deadlock and no broken rule in any interleaving
/// up to `bound`. With `race`, both orders must have been explored (some interleavings start
/// the sync thread before the racing op, some after), or the test races nothing.
fn post_fix_clean(name: &str, bound: usize, setup: Setup, race: bool) {
    for k in ["v6.7+v2", "v6.9", "v7.3"] {
        let (runs, started) = check(&format!("{name}, {k}, bound {bound}"), bound, move || {
            setup.run(k)
        });
        if race {
            assert!(0 < started && started < runs, "{k}: {started} of {runs}");
        }
    }
}

/// A pre-fix kernel: loom must fail, and with `expected` (`deadlock; threads` or a rule's
/// name) in its panic, not with some other panic.
fn pre_fix_finds(name: &str, kernel: &'static str, bound: usize, setup: Setup, expected: &str) {
    let msg = panics_of(move || bounded(bound).check(move || setup.run(kernel)));
    assert!(
        msg.contains(expected),
        "{kernel} should fail with `{expected}`, got: {msg}"
    );
    println!(
        "loom {name}, {kernel}: {} found",
        expected.trim_end_matches("; threads")
    );
}

const DEADLOCK: &str = "deadlock; threads";

#[test]
fn h1_remove_during_resync() {
    let s = Setup::dm(true, activate_then_remove);
    post_fix_clean("H1 lvchange -an during resync", 2, s, false);
    pre_fix_finds("H1 lvchange -an during resync", "v6.7", 2, s, DEADLOCK);
}

#[test]
fn m1_idle_message_during_check() {
    let s = Setup::dm(false, check_then_idle);
    post_fix_clean("M1 idle message during check", 1, s, false);
    // The run ends at the broken invariant (World::abort_on_violation): after the reap the
    // v6.7 daemon would spin on RUNNING|DONE without a sync thread.
    pre_fix_finds(
        "M1 idle message during check",
        "v6.7",
        1,
        s,
        "reap-without-reconfig-mutex",
    );
}

#[test]
fn frozen_or_remove_during_check_post_fix_is_clean() {
    post_fix_clean(
        "frozen message during check",
        1,
        Setup::dm(false, check_then_frozen),
        false,
    );
    post_fix_clean(
        "remove during check",
        1,
        Setup::dm(false, check_then_remove),
        false,
    );
}

#[test]
fn suspend_racing_sync_start() {
    let s = Setup::dm(true, activate_suspend_remove);
    post_fix_clean("suspend racing the resync start", 2, s, true);
    // The remove after the suspend: the sync thread that started before the suspend is never
    // reaped (H1).
    pre_fix_finds(
        "suspend racing the resync start, then remove",
        "v6.7",
        2,
        s,
        DEADLOCK,
    );
}

#[test]
fn resume_racing_message_post_fix_is_clean() {
    let s = Setup {
        racer: Some(message_frozen),
        ..Setup::dm(true, activate)
    };
    post_fix_clean("resume racing a frozen message", 1, s, true);
}

#[test]
fn h2_h3_readonly_reshape_frozen() {
    let s = Setup {
        array: Array::Md,
        resync: false,
        user: readonly_reshape_frozen,
        racer: None,
    };
    let name = "H2/H3 md readonly + reshape + frozen";
    post_fix_clean(name, 2, s, false);
    // v6.7: H3 (the reshape thread never sets DONE); v6.7+p1,p3: H2 (a read-only array is
    // never reaped). The verdict runner classifies the two; loom sees a deadlock in both.
    pre_fix_finds(name, "v6.7", 2, s, DEADLOCK);
    pre_fix_finds(name, "v6.7+p1,p3", 2, s, DEADLOCK);
}
