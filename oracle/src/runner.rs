//! The runner: one shuttle execution per (scenario, kernel), with a scheduler that takes its
//! decisions from the scenario's schedule while it lasts and then switches to a fair tail.
//!
//! Tasks: shuttle's main task is the runner (timer + judge); every actor of the scenario is a
//! task; the model spawns its kernel threads (md daemon, sync thread, sync_work worker) as
//! tasks. The scheduler never runs the runner while another task can run, except every
//! [`FORCED_TICK_STEPS`] decisions, so a runner step with nothing else runnable is a
//! *quiescent* tick: every task is asleep on a wait queue. Each tick wakes the periodic md
//! daemons (the bitmap daemon_sleep timeout) and user-space sleepers.
//!
//! Hang (documented bounds): [`HANG_TICKS`] quiescent ticks in a row with no op or bio
//! completing, or [`LIVELOCK_STEPS`] steps with no op completing (a livelock).

use crate::lvm;
use crate::scenario::{ArrayKind, InitState, Scenario, VerdictKind};
use crate::shadow::Shadow;
use crate::verdict::{classify_hang, Outcome};
use md_model::dm_raid::Table;
use md_model::md::block_slots;
use md_model::md_h::*;
use md_model::raid5::geo_size;
use md_model::sched::{blocked_report, Cx, Sys, World};
use md_model::sync::{thread, Arc, Mutex};
use md_model::{md, Kernel};
use shuttle::scheduler::{Schedule, Scheduler, Task, TaskId};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex as StdMutex;

pub const HANG_TICKS: u32 = 8;
pub const LIVELOCK_STEPS: u64 = 50_000;
pub const FORCED_TICK_STEPS: u32 = 1_000;
/// Reshape space lvm allocates per member, in chunks.
pub const RESHAPE_SPACE_CHUNKS: u32 = 4;

/// What runs after the schedule prefix.
#[derive(Clone, Debug)]
pub enum Tail {
    /// Round-robin over the runnable tasks (the fair tail).
    RoundRobin,
    /// One of shuttle's own schedulers decides (the baselines of the benchmark).
    Shuttle(ShuttleTail),
}

/// A shuttle scheduler that picks among the model's runnable tasks after the prefix. Shared,
/// so that a PCT scheduler can carry what it learnt (the step count) from one run of a
/// scenario to the next, as in `shuttle::check_pct`.
#[derive(Clone)]
pub struct ShuttleTail {
    name: &'static str,
    /// Ask the inner scheduler for its next execution when the run ends (it then says None:
    /// RandomScheduler prints a "failing seed" banner when dropped mid-execution).
    end_each_run: bool,
    inner: Arc<StdMutex<Box<dyn Scheduler + Send>>>,
}

impl std::fmt::Debug for ShuttleTail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl Tail {
    /// shuttle's `RandomScheduler` (what `check_random` uses), seeded, for one run.
    pub fn random(seed: u64) -> Tail {
        let s = shuttle::scheduler::RandomScheduler::new_from_seed(seed, 1);
        Tail::Shuttle(ShuttleTail {
            name: "random",
            end_each_run: true,
            inner: Arc::new(StdMutex::new(Box::new(s))),
        })
    }

    /// shuttle's `PctScheduler` (what `check_pct` uses) with bug depth `depth`, seeded.
    pub fn pct(seed: u64, depth: usize) -> Tail {
        let s = shuttle::scheduler::PctScheduler::new_from_seed(seed, depth, usize::MAX);
        Tail::Shuttle(ShuttleTail {
            name: "pct",
            end_each_run: false,
            inner: Arc::new(StdMutex::new(Box::new(s))),
        })
    }
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub trace: bool,
    pub tail: Tail,
    /// Test-only sabotage: overwrite the member slot holding this logical block of the first
    /// array after setup (proves the shadow comparison can fail).
    pub sabotage_block: Option<u64>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            trace: false,
            tail: Tail::RoundRobin,
            sabotage_block: None,
        }
    }
}

/// An op's target.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    Dm(usize),
    Md(usize),
}

/// lvm's metadata for one LV.
#[derive(Clone, Debug)]
pub struct LvMeta {
    pub table: Table,
    /// Reshape space per image (0 = none allocated yet), in blocks.
    pub reshape_space: u32,
    /// Legs a `--stripes --force` freed that a second `--stripes` must remove.
    pub freed: u32,
    /// `lvchange -pr` cleared LVM_WRITE.
    pub read_only: bool,
}

/// The user-space side of a run, kept in `World::user`.
pub struct User {
    pub targets: BTreeMap<String, Target>,
    pub shadows: BTreeMap<String, Shadow>,
    pub lvm: BTreeMap<String, LvMeta>,
    pub writes: u64,
    pub data_errors: Vec<lvm::DataError>,
    pub io_errors: Vec<(String, bool)>,
    pub op_errors: Vec<String>,
    pub requeues: u32,
    /// Each scenario op's result by index: `ok`, an errno name, or None while it has not
    /// returned (blocked at the end of a run).
    pub op_results: Vec<Option<String>>,
    /// The array's sync action when each op returned (`-`: no live instance, or not run).
    pub op_actions: Vec<String>,
    /// Each op's place in the order ops returned (None: never returned).
    pub op_order: Vec<Option<u32>>,
    /// The quiescent tick count when each op started (None: not started yet).
    pub op_started: Vec<Option<u64>>,
    pub ops_returned: u32,
    /// Woken whenever an op returns (`after N` waits here).
    pub op_done: md_model::sched::Wq,
}

pub fn user(w: &mut World) -> &mut User {
    w.user
        .as_mut()
        .and_then(|u| u.downcast_mut::<User>())
        .expect("runner user state")
}

struct Shared {
    quiescent: AtomicBool,
}

struct ByteScheduler {
    decisions: Vec<u8>,
    pos: usize,
    tail: Tail,
    rng: u64,
    last: usize,
    since_runner: u32,
    started: bool,
    shared: Arc<Shared>,
}

impl ByteScheduler {
    fn rand(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl Scheduler for ByteScheduler {
    fn new_execution(&mut self) -> Option<Schedule> {
        if self.started {
            if let Tail::Shuttle(t) = &self.tail {
                if t.end_each_run {
                    let _ = t.inner.lock().unwrap().new_execution();
                }
            }
            return None;
        }
        self.started = true;
        if let Tail::Shuttle(t) = &self.tail {
            // The inner scheduler's per-execution set-up (PCT's priorities and change points).
            let _ = t.inner.lock().unwrap().new_execution();
        }
        Some(Schedule::new(0))
    }

    fn next_task(
        &mut self,
        runnable: &[&Task],
        current: Option<TaskId>,
        yielding: bool,
    ) -> Option<TaskId> {
        let mut others: Vec<usize> = runnable
            .iter()
            .map(|t| usize::from(t.id()))
            .filter(|&i| i != 0)
            .collect();
        others.sort_unstable();
        if others.is_empty() {
            self.shared.quiescent.store(true, Ordering::Relaxed);
            return Some(TaskId::from(0));
        }
        self.since_runner += 1;
        if self.since_runner >= FORCED_TICK_STEPS
            && runnable.iter().any(|t| usize::from(t.id()) == 0)
        {
            self.since_runner = 0;
            self.shared.quiescent.store(false, Ordering::Relaxed);
            return Some(TaskId::from(0));
        }
        let pick = if others.len() == 1 {
            others[0]
        } else if self.pos < self.decisions.len() {
            let d = self.decisions[self.pos] as usize;
            self.pos += 1;
            others[d % others.len()]
        } else {
            match &self.tail {
                Tail::RoundRobin => others
                    .iter()
                    .copied()
                    .find(|&i| i > self.last)
                    .unwrap_or(others[0]),
                Tail::Shuttle(t) => {
                    let tasks: Vec<&Task> = runnable
                        .iter()
                        .copied()
                        .filter(|t| usize::from(t.id()) != 0)
                        .collect();
                    let id = t.inner.lock().unwrap().next_task(&tasks, current, yielding);
                    id.map_or(others[0], usize::from)
                }
            }
        };
        self.last = pick;
        Some(TaskId::from(pick))
    }

    fn next_u64(&mut self) -> u64 {
        self.rand()
    }
}

/// Runs `s` under kernel `kernel`. Err is a bug of the model (a panic inside it).
pub fn run(s: &Scenario, kernel: &Kernel, opts: &RunOptions) -> Result<Outcome, String> {
    let shared = Arc::new(Shared {
        quiescent: AtomicBool::new(false),
    });
    let sched = ByteScheduler {
        decisions: s.schedule.clone(),
        pos: 0,
        tail: opts.tail.clone(),
        rng: 0x9e37_79b9_7f4a_7c15,
        last: 0,
        since_runner: 0,
        started: false,
        shared: shared.clone(),
    };
    let mut config = shuttle::Config::new();
    config.stack_size = 0x40000;
    config.failure_persistence = shuttle::FailurePersistence::None;
    config.silence_warnings = true;
    config.max_steps = shuttle::MaxSteps::None;
    let result: Arc<StdMutex<Option<Result<Outcome, String>>>> = Arc::new(StdMutex::new(None));
    let (r2, s2, k2, trace, sabotage) = (
        result.clone(),
        Arc::new(s.clone()),
        kernel.clone(),
        opts.trace,
        opts.sabotage_block,
    );
    let runner = shuttle::Runner::new(sched, config);
    // A panic inside the model is caught at its task's root and reported by the runner as
    // Err; shuttle may still unwind out of `run`, so catch that here too.
    let unwound = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
        runner.run(move || {
            let out = runner_main(&s2, k2.clone(), trace, sabotage, &shared);
            *r2.lock().unwrap() = Some(out);
        })
    }));
    let out = result.lock().unwrap_or_else(|e| e.into_inner()).take();
    match (out, unwound) {
        (Some(o), _) => o,
        (None, Err(p)) => Err(format!("model panic: {}", panic_message(&*p))),
        (None, Ok(_)) => Err("the run ended without a verdict".into()),
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "non-string panic".into())
}

/// Builds the members and devices of the scenario's arrays.
fn setup(cx: &Cx, s: &Scenario) -> Result<(), String> {
    let mut k = cx.lock();
    let mut u = User {
        targets: BTreeMap::new(),
        shadows: BTreeMap::new(),
        lvm: BTreeMap::new(),
        writes: 0,
        data_errors: Vec::new(),
        io_errors: Vec::new(),
        op_errors: Vec::new(),
        requeues: 0,
        op_results: vec![None; s.ops.len()],
        op_actions: vec!["-".into(); s.ops.len()],
        op_order: vec![None; s.ops.len()],
        op_started: vec![None; s.ops.len()],
        ops_returned: 0,
        op_done: k.new_wq("op_done".into()),
    };
    let mut md_arrays = Vec::new();
    for a in &s.arrays {
        let geo = Geo {
            raid_disks: a.disks,
            layout: a.layout,
            chunk: a.chunk,
            data_offset: 0,
        };
        let space = RESHAPE_SPACE_CHUNKS * a.chunk;
        let dev_blocks = a.dev + space;
        let mut disks = vec![vec![0u64; dev_blocks as usize]; 16];
        let origin = vec![vec![(0usize, 0u64); dev_blocks as usize]; 16];
        let size = geo_size(&geo, a.dev);
        for b in 0..size {
            for (d, sl) in block_slots(&geo, b) {
                disks[d][sl] = Shadow::initial(b);
            }
        }
        k.members.push(Members {
            name: a.name.clone(),
            sb: Superblock::new(geo, a.dev, a.state == InitState::Resync),
            dev_data: a.dev,
            dev_blocks,
            disks,
            origin,
            sb_taint: None,
            smallest_array: u64::MAX,
            failing: 0,
        });
        let mem = k.members.len() - 1;
        u.shadows.insert(a.name.clone(), Shadow::new(size));
        match a.kind {
            ArrayKind::Dm => {
                let d = md_model::dm::dm_create(&mut k, &a.name, mem);
                u.targets.insert(a.name.clone(), Target::Dm(d));
                let table = Table {
                    layout: a.layout,
                    legs: a.disks,
                    chunk: a.chunk,
                    delta_disks: 0,
                    data_offset: None,
                    nosync: false,
                    rebuild: 0,
                };
                u.lvm.insert(
                    a.name.clone(),
                    LvMeta {
                        table,
                        reshape_space: 0,
                        freed: 0,
                        read_only: false,
                    },
                );
            }
            ArrayKind::Md => md_arrays.push((a.name.clone(), mem)),
        }
    }
    k.user = Some(Box::new(u));
    for (name, mem) in md_arrays {
        let m = md::md_array_assemble(&mut k, name.clone(), mem)
            .map_err(|e| format!("assembling {name}: {e}"))?;
        user(&mut k).targets.insert(name, Target::Md(m));
    }
    Ok(())
}

fn runner_main(
    s: &Arc<Scenario>,
    kernel: Kernel,
    trace: bool,
    sabotage: Option<u64>,
    shared: &Shared,
) -> Result<Outcome, String> {
    let sys = Arc::new(Sys {
        world: Mutex::new(World::new(kernel, trace)),
    });
    let runner_task = sys.world.lock().unwrap().add_task("runner".into(), true);
    let cx = Cx::new(sys.clone(), runner_task);
    setup(&cx, s)?;
    if let (Some(b), Some(a)) = (sabotage, s.arrays.first()) {
        let mut k = cx.lock();
        let geo = Geo {
            raid_disks: a.disks,
            layout: a.layout,
            chunk: a.chunk,
            data_offset: 0,
        };
        for (d, sl) in block_slots(&geo, b) {
            k.members[0].disks[d][sl] ^= 0xdead_0000;
        }
    }
    // The actors.
    let mut actor_tasks = Vec::new();
    {
        let mut k = cx.lock();
        for actor in s.actors() {
            let ops: Vec<_> = s
                .ops
                .iter()
                .enumerate()
                .filter(|(_, (a, _))| *a == actor)
                .map(|(i, (_, o))| (i, o.clone()))
                .collect();
            let t = k.spawn(actor.clone(), false, move |cx| {
                for (i, op) in &ops {
                    lvm::exec(cx, *i, op);
                }
            });
            actor_tasks.push(t);
        }
    }
    // The timer and the judge.
    let mut quiet = 0u32;
    let mut last_progress = u64::MAX;
    let mut last_progress_step = 0u64;
    let hang: Option<String> = loop {
        thread::yield_now();
        let q = shared.quiescent.swap(false, Ordering::Relaxed);
        let mut k = cx.lock();
        if k.model_panic.is_some() || actor_tasks.iter().all(|&t| k.tasks[t].finished) {
            break None;
        }
        if k.progress != last_progress {
            last_progress = k.progress;
            last_progress_step = k.steps;
            quiet = 0;
        }
        if q {
            quiet += 1;
            k.quiet_ticks += 1;
        }
        k.stalled_ticks = u64::from(quiet);
        if quiet >= HANG_TICKS {
            break Some(classify_hang(&k).to_string());
        }
        if k.steps - last_progress_step > LIVELOCK_STEPS {
            break Some("livelock".to_string());
        }
        k.ticks += 1;
        md::md_timer_tick(&mut k);
        let periodic: Vec<usize> = (0..k.threads.len())
            .filter(|&t| k.threads[t].periodic && !k.threads[t].exited)
            .collect();
        for t in periodic {
            k.threads[t].wakeup = true;
            let wq = k.threads[t].wq;
            k.wake_up(wq);
        }
        let tq = k.timer_wq;
        k.wake_up(tq);
        let sq = k.sync_completed;
        k.wake_up(sq);
        // `after N deadline` counts quiescent ticks.
        let oq = user(&mut k).op_done;
        k.wake_up(oq);
    };
    // Judge, then end every task.
    let outcome = {
        let mut k = cx.lock();
        if let Some(p) = k.model_panic.clone() {
            k.abort = true;
            k.wake_all();
            drop(k);
            wait_all_finished(&sys);
            return Err(format!("model panic: {p}"));
        }
        let o = judge(&mut k, hang);
        k.abort = true;
        k.wake_all();
        o
    };
    wait_all_finished(&sys);
    Ok(outcome)
}

fn wait_all_finished(sys: &Arc<Sys>) {
    loop {
        thread::yield_now();
        let w = sys.world.lock().unwrap_or_else(|e| e.into_inner());
        if w.tasks.iter().skip(1).all(|t| t.finished) {
            break;
        }
    }
}

/// The token of a corruption: a known finding only when its mechanism produced the bad read
/// (the finding's instance served the read, or its reshape wrote the slot) and no invariant
/// broke (a broken invariant is a cause of its own: two reshapers, a sync thread left on a
/// suspended instance, ... ); otherwise the first broken invariant's name, or no token (a
/// corruption nobody explains).
fn corruption_token(
    thread_instances: &[(usize, usize)],
    e: &lvm::DataError,
    findings: &[md_model::sched::Finding],
    violations: &[md_model::sched::Violation],
) -> &'static str {
    if let Some(v) = violations.first() {
        return v.rule;
    }
    // The instance whose reshape (sync thread) wrote the bad slot, if one did.
    let writer_instance = e
        .writer
        .and_then(|t| thread_instances.iter().find(|(task, _)| *task == t))
        .map(|(_, m)| *m);
    // The known findings all put data in the wrong place (a stale position or a stale
    // geometry): the read returns real data, not garbage, which the finding's instance
    // copied there itself, or which it mapped the read onto through its wrong idea of the
    // geometry.
    if !e.misplaced {
        return "";
    }
    findings
        .iter()
        .find(|f| Some(f.mddev) == writer_instance || Some(f.mddev) == e.served_by)
        .map_or("", |f| f.rule)
}

fn judge(w: &mut World, hang: Option<String>) -> Outcome {
    let trace = w.trace.take().unwrap_or_default();
    let (steps, ticks) = (w.steps, w.ticks);
    let gates_reached = w.k.reached();
    let blocked = blocked_report(w);
    let violations = w.violations.clone();
    let findings = w.findings.clone();
    // (task, instance) of every sync thread: whose reshape wrote a slot.
    let thread_instances: Vec<(usize, usize)> = w
        .threads
        .iter()
        .filter(|t| t.func == md_model::sched::ThreadFn::Sync)
        .map(|t| (t.task, t.mddev))
        .collect();
    let u = user(w);
    let op_results: Vec<String> = u
        .op_results
        .iter()
        .map(|r| r.clone().unwrap_or_else(|| "blocked".into()))
        .collect();
    let op_actions = u.op_actions.clone();
    let op_order = u.op_order.clone();
    let mk = |verdict, token: &str, detail: String| Outcome {
        verdict,
        token: token.to_string(),
        detail,
        trace: trace.clone(),
        steps,
        ticks,
        op_results: op_results.clone(),
        op_actions: op_actions.clone(),
        op_order: op_order.clone(),
        gates_reached,
    };
    if let Some(e) = u.data_errors.first().cloned() {
        let token = corruption_token(&thread_instances, &e, &findings, &violations);
        let mut detail = e.text.clone();
        for f in &findings {
            detail.push_str(&format!("\nafter {}: {}", f.rule, f.detail));
        }
        for v in &violations {
            detail.push_str(&format!("\nalso broke {}: {}", v.rule, v.detail));
        }
        return mk(VerdictKind::Corruption, token, detail);
    }
    if let Some((e, _)) = u.io_errors.iter().find(|(_, justified)| !justified) {
        return mk(VerdictKind::UnexpectedIoError, "", e.clone());
    }
    if let Some(class) = hang {
        let mut detail = format!("blocked:\n{blocked}");
        for v in &violations {
            detail.push_str(&format!("also broke {}: {}\n", v.rule, v.detail));
        }
        return mk(VerdictKind::Hang, &class, detail);
    }
    if let Some(v) = violations.first() {
        return mk(VerdictKind::InvariantViolation, v.rule, v.detail.clone());
    }
    let token = if !u.io_errors.is_empty() {
        "eio"
    } else if u.requeues > 0 {
        "requeued"
    } else {
        ""
    };
    let mut detail = String::new();
    for (e, _) in &u.io_errors {
        detail.push_str(&format!("io error (justified): {e}\n"));
    }
    for e in &u.op_errors {
        detail.push_str(&format!("op failed: {e}\n"));
    }
    if u.requeues > 0 {
        detail.push_str(&format!(
            "{} bio requeue(s) by a noflush suspend\n",
            u.requeues
        ));
    }
    mk(VerdictKind::Pass, token, detail)
}
