//! `mdfuzz conform`: boots the conformance VM (conformance/run-vm.sh) once per scenario and
//! run, two at a time, parses each console log, and holds the real outcome to the set of
//! outcomes the model reaches over many schedules (6.12 vs the model's v6.9; 6.1 is recorded
//! as a reference). Wall-clock time is measured here, never in the model.

use crate::{bad, load, scenario_files, BadInput};
use anyhow::anyhow;
use md_oracle::conform::{
    compare, debts, model_op_trace, model_set, parse_log, translate, ModelSet, Real, RealRun,
};
use md_oracle::scenario::Scenario;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Instant;

#[derive(clap::Args)]
/// Exit status: 0 every run agrees with the model, 1 a disagreement or a refused scenario,
/// 2 bad input or a boot that gave no result (the harness is broken).
pub struct Conform {
    /// Scenario files or folders of .scn files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The real kernel: 6.12, 6.1 or 7.3 (the newest kernel of Debian backports).
    #[arg(long)]
    pub real: String,
    /// Boots per scenario.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// VMs side by side.
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
    /// Runs of each of shuttle's random and PCT schedulers for the model's outcome set.
    #[arg(long, default_value_t = 200)]
    pub model_runs: u32,
    /// The conformance folder (build.sh, run-vm.sh).
    #[arg(long, default_value = "conformance")]
    pub harness: PathBuf,
    /// Where the console logs and guest scripts go.
    #[arg(long, default_value = "target/conform")]
    pub out: PathBuf,
    /// Wall-time cap per boot, seconds (the guest gives up on its scenario after 600 s of
    /// its own time).
    #[arg(long, default_value_t = 900)]
    pub timeout: u32,
    /// A patched dm-raid.ko (conformance/build-module.sh) loaded instead of the stock one.
    #[arg(long)]
    pub module: Option<PathBuf>,
    /// Print the scenario the model runs for each real run (the VM script's order: every op
    /// a task that starts after the step before it or its deadline, the guest's throttle) and
    /// stop: `mdfuzz search` / `replay` take it to reproduce a model outcome of the set.
    #[arg(long)]
    pub print_model_scenario: bool,
    /// With --print-model-scenario: the timer ticks between one of the first actor's steps
    /// and the next (the model's outcome set is the union over 0, 1, 2 and 4: the guest's
    /// status and superblock logging takes VM time the model has no clock for).
    #[arg(long, default_value_t = 0)]
    pub gap: u32,
    /// Judge the console logs a previous run left in this folder (same scenarios, --runs
    /// and --real) against the model as it is now, without booting anything.
    #[arg(long)]
    pub from_logs: Option<PathBuf>,
    /// The model kernel the real one is held to (default: the real kernel's, e.g. v6.9 for
    /// 6.12); with --module, the model with the same fix (e.g. v6.9+f1).
    #[arg(long)]
    pub model: Option<String>,
}

struct Job {
    name: String,
    run: u32,
    script: PathBuf,
    log: PathBuf,
}

struct Boot {
    /// Why the VM gave no log to parse (None: parse the log).
    error: Option<String>,
    wall_s: f64,
}

fn boot(harness: &Path, real: Real, job: &Job, timeout: u32, module: Option<&Path>) -> Boot {
    let start = Instant::now();
    let mut cmd = Command::new("bash");
    if let Some(m) = module {
        cmd.env("CONF_MODULE", m);
    }
    let status = cmd
        .arg(harness.join("run-vm.sh"))
        .arg(real.name())
        .arg(&job.script)
        .arg(&job.log)
        .arg(timeout.to_string())
        .output();
    let wall_s = start.elapsed().as_secs_f64();
    // Exit 1 (no DONE marker) still leaves a log: parse_log says what is missing.
    let error = match status {
        Err(e) => Some(format!("run-vm.sh: {e}")),
        Ok(o) if o.status.code() == Some(2) => Some(format!(
            "run-vm.sh: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        )),
        Ok(_) => None,
    };
    Boot { error, wall_s }
}

/// The real verdict and every op that did not simply return 0 (`op 3 EINVAL`).
fn real_cell(r: &RealRun) -> String {
    let ops: Vec<String> = r
        .ops
        .iter()
        .enumerate()
        .filter(|(_, x)| *x != "ok")
        .map(|(i, x)| format!("op {} {x}", i + 1))
        .collect();
    if ops.is_empty() {
        r.verdict.clone()
    } else {
        format!("{} ({})", r.verdict, ops.join(", "))
    }
}

pub fn conform(c: &Conform) -> Result<bool, BadInput> {
    let real = Real::parse(&c.real).map_err(|e| bad(anyhow!("--real: {e}")))?;
    let files = scenario_files(&c.paths)?;
    let mut scenarios: Vec<(String, Scenario, String)> = Vec::new();
    let mut refused = Vec::new();
    for f in &files {
        let s = load(f)?;
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        match translate(&s) {
            Ok(script) => scenarios.push((name, s, script)),
            Err(e) => refused.push(format!("{}: refused: {e}", f.display())),
        }
    }
    for r in &refused {
        eprintln!("{r}");
    }
    if c.print_model_scenario {
        for (name, s, _) in &scenarios {
            println!(
                "# {name} as the model runs it for --real {}, gap {}",
                real.name(),
                c.gap
            );
            print!("{}", md_oracle::conform::as_run_in_vm(s, c.gap).0);
        }
        return Ok(refused.is_empty());
    }
    if scenarios.is_empty() {
        return Ok(false);
    }
    if c.from_logs.is_none() {
        let build = Command::new("bash")
            .arg(c.harness.join("build.sh"))
            .arg("--kernels")
            .arg(real.name())
            .status()
            .map_err(|e| bad(anyhow!("{}: {e}", c.harness.join("build.sh").display())))?;
        if !build.success() {
            return Err(bad(anyhow!("conformance/build.sh failed")));
        }
    }
    let out_dir = c.from_logs.as_ref().unwrap_or(&c.out);
    std::fs::create_dir_all(out_dir).map_err(|e| bad(anyhow!("{}: {e}", out_dir.display())))?;
    let mut jobs = Vec::new();
    for (name, _, script) in &scenarios {
        let stem = name.trim_end_matches(".scn");
        let sp = out_dir.join(format!("{stem}.sh"));
        std::fs::write(&sp, script).map_err(|e| bad(anyhow!("{}: {e}", sp.display())))?;
        for run in 1..=c.runs {
            jobs.push(Job {
                name: name.clone(),
                run,
                script: sp.clone(),
                log: out_dir.join(format!("{stem}.{}.run{run}.log", real.name())),
            });
        }
    }
    // The model's sets while the VMs boot would compete for the 2 cores: compute them first.
    let kernel = match &c.model {
        Some(k) => Some(md_model::Kernel::parse(k).map_err(|e| bad(anyhow!("--model: {e}")))?),
        None => real
            .model()
            .map(|k| md_model::Kernel::parse(k).expect("model kernel")),
    };
    if let Some(m) = &c.module {
        if !m.is_file() {
            return Err(bad(anyhow!("--module {}: no such file", m.display())));
        }
    }
    let mut sets: Vec<Option<ModelSet>> = Vec::new();
    for (name, s, _) in &scenarios {
        sets.push(match &kernel {
            Some(k) => Some(
                model_set(s, k, c.model_runs).map_err(|e| bad(anyhow!("{name}: model: {e}")))?,
            ),
            None => None,
        });
    }
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<Option<Boot>>> = Mutex::new((0..jobs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..c.jobs.max(1) {
            scope.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(job) = jobs.get(i) else { break };
                let b = if c.from_logs.is_some() {
                    Boot {
                        error: None,
                        wall_s: 0.0,
                    }
                } else {
                    eprintln!("boot {} run {} on {}", job.name, job.run, real.name());
                    boot(&c.harness, real, job, c.timeout, c.module.as_deref())
                };
                results.lock().unwrap()[i] = Some(b);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let model_name = kernel
        .as_ref()
        .map_or("none".to_string(), |k| k.name().to_string());
    let real_name = match &c.module {
        Some(m) => format!(
            "{} + {}",
            real.name(),
            m.parent()
                .and_then(|p| p.file_name())
                .map_or(m.display().to_string(), |n| n.to_string_lossy().to_string())
        ),
        None => real.name().to_string(),
    };
    println!("| scenario | run | real kernel | real outcome | model ({model_name}) outcome set | agree | wall s |");
    println!("|---|---|---|---|---|---|---|");
    let mut all_agree = true;
    let mut broken = 0;
    let (mut n_agree, mut n_disagree) = (0u32, 0u32);
    let mut details = String::new();
    let mut evidence = String::new();
    // Per scenario, the runs that gave a result (for the debts).
    let mut reals: Vec<Vec<RealRun>> = vec![Vec::new(); scenarios.len()];
    for (job, b) in jobs.iter().zip(results) {
        let b = b.expect("every job ran");
        let idx = scenarios.iter().position(|(n, ..)| *n == job.name).unwrap();
        let (_, s, _) = &scenarios[idx];
        let real_run: Result<RealRun, String> = match b.error {
            Some(e) => Err(e),
            None => std::fs::read_to_string(&job.log)
                .map_err(|e| format!("{}: {e}", job.log.display()))
                .and_then(|log| parse_log(s, &log)),
        };
        if let Ok(r) = &real_run {
            reals[idx].push(r.clone());
            let ev = run_evidence(s, r);
            if !ev.is_empty() {
                evidence.push_str(&format!(
                    "\n### {} run {} ({}): {}\n{ev}",
                    job.name,
                    job.run,
                    real.name(),
                    r.verdict
                ));
            }
        }
        let set = &sets[idx];
        let model_cell = set.as_ref().map_or("(reference only)".to_string(), |m| {
            m.verdicts
                .iter()
                .map(|(v, n)| format!("{v} ×{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        let (real_cell, agree) = match (&real_run, set) {
            (Err(e), _) => {
                broken += 1;
                (format!("no result: {e}"), "error".to_string())
            }
            (Ok(r), None) => (real_cell(r), "-".to_string()),
            (Ok(r), Some(m)) => {
                let d = compare(s, r, m);
                if d.is_empty() {
                    n_agree += 1;
                    (real_cell(r), "agree".to_string())
                } else {
                    all_agree = false;
                    n_disagree += 1;
                    details.push_str(&format!(
                        "\n### {} run {} ({}): disagree\n",
                        job.name,
                        job.run,
                        real.name()
                    ));
                    for x in &d {
                        details.push_str(&format!("- {x}\n"));
                    }
                    details.push_str(
                        "\n| op | real | real status after | model results |\n|---|---|---|---|\n",
                    );
                    for (i, (actor, op)) in s.ops.iter().enumerate() {
                        details.push_str(&format!(
                            "| {actor}: {op} | {} | {} | {:?} |\n",
                            r.ops[i],
                            r.status[i].as_deref().unwrap_or("-"),
                            m.ops[i]
                        ));
                    }
                    if let Some(k) = &kernel {
                        details.push_str("\nmodel run (round-robin schedule, gap 0):\n\n");
                        for l in model_op_trace(s, k).unwrap_or_else(|e| vec![e]) {
                            details.push_str(&format!("    {l}\n"));
                        }
                    }
                    (real_cell(r), "DISAGREE".to_string())
                }
            }
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.0} |",
            job.name, job.run, real_name, real_cell, model_cell, agree, b.wall_s
        );
    }
    if !details.is_empty() {
        println!("{details}");
    }
    if !evidence.is_empty() {
        println!("\n## Evidence (superblock trail, bad-block map, kernel log)\n{evidence}");
    }
    // Outcomes the model reaches that the kernel has not shown: open debts, not agreement.
    let mut n_debts = 0;
    let mut debt_text = String::new();
    let mut debt_examples = String::new();
    for (idx, (name, s, _)) in scenarios.iter().enumerate() {
        let Some(m) = &sets[idx] else { continue };
        let rs: Vec<&RealRun> = reals[idx].iter().collect();
        let real_verdicts: std::collections::BTreeSet<&str> =
            rs.iter().map(|r| r.verdict.as_str()).collect();
        let d = debts(s, &rs, m);
        n_debts += d.len();
        for (v, (tail, detail)) in &m.examples {
            if !real_verdicts.contains(v.as_str()) {
                debt_examples.push_str(&format!(
                    "\n### {name}: model verdict `{v}` (first seen with the {tail} tail)\n\n```\n{}\n```\n",
                    detail.trim_end()
                ));
            }
        }
        debt_text.push_str(&format!(
            "| {name} | {} | {} | {} |\n",
            real_verdicts.into_iter().collect::<Vec<_>>().join(", "),
            m.verdicts
                .iter()
                .map(|(v, n)| format!("{v} ×{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            if d.is_empty() {
                "none".to_string()
            } else {
                d.join("; ")
            }
        ));
    }
    if kernel.is_some() {
        println!(
            "\n## Open debts (model outcomes no real run has shown)\n\n| scenario | real verdicts | model ({}) | debts |\n|---|---|---|---|\n{debt_text}",
            real.model().unwrap_or("-")
        );
        if !debt_examples.is_empty() {
            println!("\n## Model verdicts no real run showed: one model run each\n{debt_examples}");
        }
        println!(
            "summary ({}): {} runs: {n_agree} agree, {n_disagree} disagree, {broken} without a result; {n_debts} open debts",
            real.name(),
            jobs.len()
        );
    }
    for r in &refused {
        println!("{r}");
    }
    if broken > 0 {
        // The harness, not the kernel: exit 2, unlike a disagreement (exit 1).
        return Err(bad(anyhow!(
            "{broken} boot(s) gave no result; logs in {}",
            c.out.display()
        )));
    }
    Ok(all_agree && refused.is_empty())
}

/// The real run's evidence beyond the verdict: the on-disk superblock after each op of the
/// first actor (events, reshape_position), advances, the bad-block map, kernel warnings.
fn run_evidence(s: &Scenario, r: &RealRun) -> String {
    let mut out = String::new();
    let trail: Vec<String> =
        r.sb.iter()
            .enumerate()
            .filter_map(|(i, sb)| {
                let sb = sb.as_deref()?;
                let field = |k: &str| {
                    sb.split_whitespace()
                        .find_map(|w| w.strip_prefix(k)?.strip_prefix('='))
                        .unwrap_or("?")
                        .to_string()
                };
                Some(format!(
                    "op {} `{}`: events {} reshape_position {}",
                    i + 1,
                    s.ops[i].1,
                    field("events"),
                    field("reshape_position")
                ))
            })
            .collect();
    let interesting = r.verdict != "pass" || !r.warnings.is_empty() || !r.hung_tasks.is_empty();
    if !interesting {
        return out;
    }
    for t in trail {
        out.push_str(&format!("- sb after {t}\n"));
    }
    for (what, list) in [
        ("advance ", &r.advances),
        ("badmap ", &r.badmap),
        ("kernel: ", &r.warnings),
        ("kernel: ", &r.hung_tasks),
    ] {
        for x in list {
            out.push_str(&format!("- {what}{x}\n"));
        }
    }
    if r.io_across_refused > 0 {
        out.push_str(&format!(
            "- kernel: {} x `io across reshape position while reshape can't make progress`\n",
            r.io_across_refused
        ));
    }
    out
}
