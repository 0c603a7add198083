//! Kernel infrastructure the lifecycle runs on: tasks (kthreads and user contexts), wait
//! queues, the big lock that stands for "everything the kernel code touches", and bios.
//!
//! The whole model state is one [`World`] behind one facade `Mutex`. Kernel code holds it
//! while it runs and gives it up only at explicit preemption points ([`K::pre`]) and when it
//! sleeps on a wait queue ([`K::sleep`]). Each wait queue is its own `Condvar`, so a wake-up on
//! one queue does not wake a sleeper on another — a lost or missing wake-up is a real hang.
//! Sleeping locks of the kernel (`reconfig_mutex`, `suspend_mutex`, `sync_mutex`) are
//! owner fields plus a wait queue, so a hang report can say who holds them.
//!
//! A run ends by setting [`World::abort`] and waking every queue: each task then unwinds from
//! its sleep with an [`Aborted`] payload, which its root catches (no panic hook runs).

use crate::dm::MappedDevice;
use crate::dm_raid::RaidSet;
use crate::kernel::Kernel;
use crate::md_h::{recovery_str, Mddev, Members};
use crate::sync::{thread, Arc, Condvar, Mutex, MutexGuard};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::ops::{Deref, DerefMut};

pub type TaskId = usize;
pub type ThreadId = usize;
pub type MdId = usize;
pub type DevId = usize;
pub type BioId = usize;

/// A wait queue (`wait_queue_head_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wq(pub usize);

/// Where and why a task sleeps.
#[derive(Clone, Debug)]
pub struct Sleep {
    pub wq: Wq,
    pub what: String,
    pub stack: Vec<&'static str>,
}

#[derive(Clone, Debug)]
pub struct TaskInfo {
    pub name: String,
    pub kernel: bool,
    pub finished: bool,
    pub sleep: Option<Sleep>,
}

/// What an md thread runs each time it is woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThreadFn {
    /// `mddev->thread`: raid5d, which calls md_check_recovery.
    Daemon,
    /// `mddev->sync_thread`: md_do_sync.
    Sync,
    /// The `md_misc_wq` worker of `mddev->sync_work`: md_start_sync.
    SyncWork,
}

/// `struct md_thread` + its kthread.
#[derive(Clone, Debug)]
pub struct MdThread {
    pub name: String,
    pub mddev: MdId,
    pub func: ThreadFn,
    /// `THREAD_WAKEUP` (for the worker: the work is pending).
    pub wakeup: bool,
    pub should_stop: bool,
    pub exited: bool,
    /// The thread also runs on its timeout (the daemon once a bitmap is loaded).
    pub periodic: bool,
    pub task: TaskId,
    pub wq: Wq,
    /// Invocations of the thread function, and whether one is under way.
    pub runs: u32,
    pub in_fn: bool,
    /// For sync threads: how the last md_do_sync invocation left (`E2 WAIT`, `skip`, ...).
    pub last_exit: &'static str,
    pub registered_by: &'static str,
}

/// A block IO request as the model needs it.
#[derive(Clone, Debug)]
pub struct Bio {
    pub write: bool,
    pub start: u64,
    pub len: u64,
    /// What a write stores (one tag for every block it covers).
    pub tag: u64,
    /// What a read returned, block by block, and who wrote each block's slot when.
    pub data: Vec<u64>,
    pub origins: Vec<(usize, u64)>,
    pub status: Option<Result<(), &'static str>>,
    pub wq: Wq,
    /// Times dm requeued it (DM_MAPIO_REQUEUE during a noflush suspend).
    pub requeued: u32,
    /// The instance whose md_handle_request took the bio last (for putting a bad read down
    /// to the instance that mapped it).
    pub served_by: Option<MdId>,
}

/// The lifecycle invariants the model checks (a broken one is the token of its verdict).
pub const INVARIANTS: &[&str] = &[
    "warn-resume-not-frozen",
    "warn-resume-running",
    "warn-resume-sync-thread",
    "warn-done-without-thread",
    "reap-without-reconfig-mutex",
    "sync-thread-after-postsuspend",
    "sync-thread-at-stop",
    "two-reshapers",
];

/// A broken lifecycle rule (architecture.md §4 `InvariantViolation`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub rule: &'static str,
    pub detail: String,
}

/// A known model finding (see the corpus' `finding-*` scenarios) and the table instance it
/// makes misbehave: a corruption is put down to the finding only when that instance served
/// the bad read or its reshape wrote the bad data (the finding's mechanism), never merely
/// because the finding happened somewhere in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static str,
    pub detail: String,
    pub mddev: MdId,
}

/// A read that returned something other than the data the oracle allows there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataError {
    pub detail: String,
}

pub struct World {
    pub k: Kernel,
    pub tasks: Vec<TaskInfo>,
    wqs: Vec<Arc<Condvar>>,
    wq_names: Vec<String>,
    wq_wakes: Vec<u64>,
    pub threads: Vec<MdThread>,
    pub mddevs: Vec<Mddev>,
    /// The dm-raid `raid_set` around each mddev (None for md arrays).
    pub raid_sets: Vec<Option<RaidSet>>,
    pub members: Vec<Members>,
    pub dms: Vec<MappedDevice>,
    pub bios: Vec<Bio>,
    /// The global `resync_wait`.
    pub resync_wait: Wq,
    /// Woken by every timer tick (user-space sleeps and polls wait here).
    pub timer_wq: Wq,
    pub ticks: u64,
    /// Ticks taken while every other task slept (the runner's quiescent ticks).
    pub quiet_ticks: u64,
    /// Quiescent ticks in a row with no op or bio completing and no sync progress.
    pub stalled_ticks: u64,
    /// `/proc/sys/dev/raid/speed_limit_max` is low (the conformance VM's throttle): a sync
    /// thread does one unit per timer tick.
    pub sync_throttled: bool,
    /// `sysfs_notify_dirent_safe(mddev->sysfs_completed)`, one queue for every array: woken
    /// where the kernel notifies `sync_completed` (reshape checkpoints, a restarted
    /// reshape's skip, the end of a sync pass); user-space pollers of the progress wait here
    /// (the runner's ticks wake it too, as a poll timeout).
    pub sync_completed: Wq,
    /// The trace, when tracing.
    pub trace: Option<Vec<String>>,
    pub violations: Vec<Violation>,
    /// Known behaviours the model exhibits that a run may end in (see the corpus' `finding-*`
    /// scenarios): `stale-ctr-position`, ...
    pub findings: Vec<Finding>,
    /// A model panic (a bug of the model, not a kernel verdict).
    pub model_panic: Option<String>,
    pub abort: bool,
    /// End the run at the first broken invariant (loom: a v6.7 daemon that finds
    /// RUNNING|DONE without a sync thread after M1's reap wakes itself forever, a spin no
    /// preemption bound can cut short).
    pub abort_on_violation: bool,
    /// Bumped whenever an op or a bio completes.
    pub progress: u64,
    /// Bumped whenever a task is scheduled under the big lock (a step of the trace).
    pub steps: u64,
    /// Bios the kernel refused (EIO or handed back to dm), with whether the refusal was
    /// justified at that moment (the reshape they crossed could not progress, the device
    /// shrank under them or went away), and why.
    pub io_refusals: Vec<IoRefusal>,
    /// State of the user-space side (the oracle's: lvm metadata, shadow copies).
    pub user: Option<Box<dyn std::any::Any + Send>>,
}

#[derive(Clone, Debug)]
pub struct IoRefusal {
    pub bio: BioId,
    pub justified: bool,
    pub why: String,
}

/// Unwind payload of a task ended by the runner.
pub struct Aborted;

pub struct Sys {
    pub world: Mutex<World>,
}

/// A task's own context: who it is and its kernel call stack.
pub struct Cx {
    pub sys: Arc<Sys>,
    pub task: TaskId,
    stack: RefCell<Vec<&'static str>>,
}

pub struct Frame<'a>(&'a Cx);
impl Drop for Frame<'_> {
    fn drop(&mut self) {
        self.0.stack.borrow_mut().pop();
    }
}

impl Cx {
    pub fn new(sys: Arc<Sys>, task: TaskId) -> Cx {
        Cx {
            sys,
            task,
            stack: RefCell::new(Vec::new()),
        }
    }
    /// Enter a kernel function (for stacks in hang reports and traces).
    pub fn enter(&self, f: &'static str) -> Frame<'_> {
        self.stack.borrow_mut().push(f);
        Frame(self)
    }
    pub fn stack(&self) -> Vec<&'static str> {
        self.stack.borrow().clone()
    }
    pub fn func(&self) -> &'static str {
        self.stack.borrow().last().copied().unwrap_or("-")
    }
    pub fn lock(&self) -> K<'_> {
        let g = self.sys.world.lock().unwrap_or_else(|e| e.into_inner());
        let mut k = K {
            cx: self,
            g: Some(g),
        };
        k.steps += 1;
        k.check_abort();
        k
    }
}

/// Enter a kernel function: `enter!(k, "md_check_recovery");`
#[macro_export]
macro_rules! enter {
    ($k:expr, $f:expr) => {
        let __cx = $k.cx;
        let _frame = __cx.enter($f);
    };
}

/// The big lock, held by kernel code of one task.
pub struct K<'a> {
    pub cx: &'a Cx,
    g: Option<MutexGuard<'a, World>>,
}

impl Deref for K<'_> {
    type Target = World;
    fn deref(&self) -> &World {
        self.g.as_ref().expect("world lock held")
    }
}
impl DerefMut for K<'_> {
    fn deref_mut(&mut self) -> &mut World {
        self.g.as_mut().expect("world lock held")
    }
}

impl World {
    pub fn new(k: Kernel, tracing: bool) -> World {
        k.reset_reached();
        let mut w = World {
            k,
            tasks: Vec::new(),
            wqs: Vec::new(),
            wq_names: Vec::new(),
            wq_wakes: Vec::new(),
            threads: Vec::new(),
            mddevs: Vec::new(),
            raid_sets: Vec::new(),
            members: Vec::new(),
            dms: Vec::new(),
            bios: Vec::new(),
            resync_wait: Wq(0),
            timer_wq: Wq(0),
            ticks: 0,
            quiet_ticks: 0,
            stalled_ticks: 0,
            sync_throttled: false,
            sync_completed: Wq(0),
            trace: tracing.then(Vec::new),
            violations: Vec::new(),
            findings: Vec::new(),
            model_panic: None,
            abort: false,
            abort_on_violation: false,
            progress: 0,
            steps: 0,
            io_refusals: Vec::new(),
            user: None,
        };
        w.resync_wait = w.new_wq("resync_wait".into());
        w.timer_wq = w.new_wq("timer".into());
        w.sync_completed = w.new_wq("sync_completed".into());
        w
    }

    pub fn new_wq(&mut self, name: String) -> Wq {
        self.wqs.push(Arc::new(Condvar::new()));
        self.wq_names.push(name);
        self.wq_wakes.push(0);
        Wq(self.wqs.len() - 1)
    }

    pub fn wq_name(&self, q: Wq) -> &str {
        &self.wq_names[q.0]
    }

    pub fn wake_up(&mut self, q: Wq) {
        self.wq_wakes[q.0] += 1;
        self.wqs[q.0].notify_all();
    }

    /// How many wake-ups `q` has had (for sleeps with no condition but the wake-up itself).
    pub fn wakes(&self, q: Wq) -> u64 {
        self.wq_wakes[q.0]
    }

    pub fn wake_all(&mut self) {
        for q in 0..self.wqs.len() {
            self.wake_up(Wq(q));
        }
    }

    pub fn add_task(&mut self, name: String, kernel: bool) -> TaskId {
        self.tasks.push(TaskInfo {
            name,
            kernel,
            finished: false,
            sleep: None,
        });
        self.tasks.len() - 1
    }

    /// A `WARN_ON` / `WARN_ON_ONCE` of the kernel fires: a state its authors assert cannot
    /// happen (a WARNING splat in dmesg; `panic_on_warn` makes it a crash). Each WARN site
    /// has its own rule (`warn-*`), so one WARN cannot stand for another.
    pub fn warn_on(&mut self, rule: &'static str, cond: &str, func: &str) {
        self.violation(rule, format!("WARN_ON_ONCE({cond}) in {func}"));
    }

    pub fn violation(&mut self, rule: &'static str, detail: String) {
        debug_assert!(
            INVARIANTS.contains(&rule),
            "invariant `{rule}` not in INVARIANTS"
        );
        if let Some(t) = self.trace.as_mut() {
            t.push(format!("!! invariant {rule}: {detail}"));
        }
        self.violations.push(Violation { rule, detail });
        if self.abort_on_violation {
            self.abort = true;
            self.wake_all();
        }
    }

    pub fn tracing(&self) -> bool {
        self.trace.is_some()
    }

    /// The oracle's judgement, taken at the moment a bio is refused: can the reshape of `m`
    /// make progress? It cannot when the instance is read-only, WAIT, FROZEN, interrupted,
    /// has no sync thread, or is being suspended.
    pub fn reshape_stalled(&self, m: MdId) -> (bool, String) {
        use crate::md_h::*;
        let md = &self.mddevs[m];
        let suspending = md.active_io_dying
            || self
                .dms
                .iter()
                .any(|d| d.live_md() == Some(m) && d.block_io);
        let why = format!(
            "{}: recovery {}, {}, sync thread {}{}",
            md.name,
            recovery_str(md.recovery),
            if md_is_rdwr(md) {
                "read-write"
            } else {
                "read-only"
            },
            if md.sync_thread.is_some() {
                "registered"
            } else {
                "none"
            },
            if suspending {
                ", suspend in progress"
            } else {
                ""
            }
        );
        let stalled = !md_is_rdwr(md)
            || md.test(MD_RECOVERY_WAIT)
            || md.test(MD_RECOVERY_FROZEN)
            || md.test(MD_RECOVERY_INTR)
            || md.sync_thread.is_none()
            || suspending;
        (stalled, why)
    }
}

impl<'a> K<'a> {
    fn check_abort(&mut self) {
        if self.abort {
            // Release the lock before unwinding: a guard dropped by the unwind would poison it.
            self.g = None;
            std::panic::resume_unwind(Box::new(Aborted));
        }
    }

    /// A preemption point: the big lock is dropped and re-taken, so the scheduler may run
    /// any other task here.
    pub fn pre(&mut self) {
        self.g = None;
        self.g = Some(self.cx.sys.world.lock().unwrap_or_else(|e| e.into_inner()));
        self.steps += 1;
        self.check_abort();
    }

    /// `schedule()` in a polling loop: drop the lock and yield the CPU (loom needs an explicit
    /// yield in a spin loop).
    pub fn yield_now(&mut self) {
        self.g = None;
        thread::yield_now();
        self.g = Some(self.cx.sys.world.lock().unwrap_or_else(|e| e.into_inner()));
        self.steps += 1;
        self.check_abort();
    }

    /// `wait_event(wq, cond)`: sleep on `wq` until `cond` holds. No timeout.
    pub fn sleep(&mut self, wq: Wq, what: &str, cond: impl Fn(&World) -> bool) {
        let mut slept = false;
        loop {
            self.check_abort();
            if cond(self) {
                if slept {
                    // For timelines (oracle/src/timeline.rs): the end of a blocked span.
                    self.trace(|| "zz woke".into());
                }
                return;
            }
            if !slept {
                slept = true;
                if self.trace.is_some() {
                    let q = self.wq_names[wq.0].clone();
                    self.trace(|| format!("zz sleeps: {what} [{q}]"));
                }
            }
            let task = self.cx.task;
            let stack = self.cx.stack();
            self.tasks[task].sleep = Some(Sleep {
                wq,
                what: what.to_string(),
                stack,
            });
            let cv = self.wqs[wq.0].clone();
            let g = self.g.take().expect("world lock held");
            let g = cv.wait(g).unwrap_or_else(|e| e.into_inner());
            self.g = Some(g);
            self.steps += 1;
            self.tasks[task].sleep = None;
        }
    }

    /// `wake_up_process()`: wake a task wherever it sleeps (it re-checks its condition).
    pub fn wake_task(&mut self, t: TaskId) {
        if let Some(q) = self.tasks[t].sleep.as_ref().map(|s| s.wq) {
            self.wake_up(q);
        }
    }

    /// `wait_woken()` with no condition: sleep until the next wake-up of `wq`.
    pub fn sleep_once(&mut self, wq: Wq, what: &str) {
        let seen = self.wakes(wq);
        self.sleep(wq, what, |w| w.wakes(wq) != seen);
    }

    /// A trace line, attributed to this task and its current kernel function.
    pub fn trace(&mut self, msg: impl FnOnce() -> String) {
        if self.trace.is_some() {
            let line = format!(
                "{:>6} {:<14} {}",
                self.steps,
                self.tasks[self.cx.task].name,
                msg()
            );
            self.trace.as_mut().unwrap().push(line);
        }
    }

    fn recovery_changed(&mut self, m: MdId, before: u32) {
        let after = self.mddevs[m].recovery;
        if before == after {
            return;
        }
        if self.trace.is_some() {
            let f = self.cx.func();
            let name = self.mddevs[m].name.clone();
            self.trace(|| {
                format!(
                    "{name} recovery {} -> {} ({f})",
                    recovery_str(before),
                    recovery_str(after)
                )
            });
        }
    }

    pub fn set_bit(&mut self, m: MdId, b: u32) {
        let before = self.mddevs[m].recovery;
        self.mddevs[m].recovery |= 1 << b;
        self.recovery_changed(m, before);
    }

    pub fn clear_bit(&mut self, m: MdId, b: u32) {
        let before = self.mddevs[m].recovery;
        self.mddevs[m].recovery &= !(1 << b);
        self.recovery_changed(m, before);
    }

    pub fn test_bit(&self, m: MdId, b: u32) -> bool {
        self.mddevs[m].test(b)
    }

    pub fn test_and_clear_bit(&mut self, m: MdId, b: u32) -> bool {
        let was = self.test_bit(m, b);
        self.clear_bit(m, b);
        was
    }

    pub fn test_and_set_bit(&mut self, m: MdId, b: u32) -> bool {
        let was = self.test_bit(m, b);
        self.set_bit(m, b);
        was
    }

    /// Sets the whole recovery word (`mddev->recovery = x`).
    pub fn set_recovery(&mut self, m: MdId, v: u32) {
        let before = self.mddevs[m].recovery;
        self.mddevs[m].recovery = v;
        self.recovery_changed(m, before);
    }

    /// Spawns a task running `f`. Kernel tasks (kthreads, workers) do not count as ops.
    pub fn spawn(
        &mut self,
        name: String,
        kernel: bool,
        f: impl FnOnce(&Cx) + Send + 'static,
    ) -> TaskId {
        let task = self.add_task(name, kernel);
        let sys = self.cx.sys.clone();
        thread::spawn(move || run_task(sys, task, f));
        task
    }
}

/// The root of every model task: runs `f`, then marks the task finished. An [`Aborted`]
/// unwind is the normal end of a task the runner stopped; any other panic is a model bug
/// and is recorded for the verdict.
pub fn run_task(sys: Arc<Sys>, task: TaskId, f: impl FnOnce(&Cx)) {
    let cx = Cx::new(sys, task);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&cx)));
    let mut w = cx.sys.world.lock().unwrap_or_else(|e| e.into_inner());
    w.tasks[task].finished = true;
    w.tasks[task].sleep = None;
    if let Err(p) = r {
        if !p.is::<Aborted>() {
            #[cfg(feature = "loom")]
            {
                // loom's own panics (deadlock, branch limit) must reach loom.
                drop(w);
                std::panic::resume_unwind(p);
            }
            #[cfg(not(feature = "loom"))]
            {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "non-string panic".into());
                let name = w.tasks[task].name.clone();
                w.model_panic.get_or_insert(format!("{name}: {msg}"));
                w.abort = true;
                w.wake_all();
            }
        }
    }
}

/// Formats the tasks that have not finished, with where they sleep (hang reports).
pub fn blocked_report(w: &World) -> String {
    let mut s = String::new();
    for t in w.tasks.iter().filter(|t| !t.finished) {
        match &t.sleep {
            Some(sl) => {
                let _ = writeln!(
                    s,
                    "  {}: {} [{}] in {}",
                    t.name,
                    sl.what,
                    w.wq_name(sl.wq),
                    sl.stack.join(" > ")
                );
            }
            None => {
                let _ = writeln!(s, "  {}: runnable", t.name);
            }
        }
    }
    s
}
