//! `mdfuzz`: replay md / dm-raid lifecycle scenarios against pre-fix and post-fix kernels,
//! search schedules, and list the kernels.

use anyhow::{anyhow, Context, Result};
use clap::{Parser, Subcommand};
use md_model::kernel::{Series, NAMED, PATCHES};
use md_model::Kernel;
use md_oracle::scenario::{Expect, Scenario};
use md_oracle::{run, text, RunOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const DEFAULT_KERNELS: [&str; 3] = ["v6.7", "v6.7+v2", "v6.9"];

#[derive(Parser)]
#[command(
    name = "mdfuzz",
    version,
    about = "Test bench for the md / dm-raid sync_thread lifecycle (Linux v6.7 and its fixes)"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// List the named kernels and every patch a kernel name can add or remove.
    Kernels,
    /// Run scenario files (or folders of *.scn) under kernels and print the verdict table.
    Replay {
        /// Scenario files or folders.
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Kernel(s) to run (default: v6.7, v6.7+v2, v6.9 and every kernel an `expect` names).
        #[arg(short, long = "kernel")]
        kernels: Vec<String>,
        /// Print the trace of every run.
        #[arg(long)]
        trace: bool,
        /// One JSON object per (scenario, kernel) line instead of the table.
        #[arg(long)]
        json: bool,
        /// Draw the run as a timeline (one scenario, one kernel): OUT.svg, or OUT.html (the
        /// same picture in a page).
        #[arg(long, value_name = "OUT")]
        timeline: Option<PathBuf>,
    },
    /// An in-process fuzz campaign: generated scenarios and schedules, checked by a property;
    /// each new failure is minimized and saved as a commented scenario.
    Fuzz {
        #[command(flatten)]
        campaign: fuzz::Campaign,
        /// Where findings go.
        #[arg(long, default_value = "fuzz-findings")]
        out: PathBuf,
    },
    /// Shrink a scenario (ops, schedule) while it keeps its verdict under KERNEL.
    Minimize {
        file: PathBuf,
        #[arg(short, long)]
        kernel: String,
    },
    /// Benchmark: executions per second and time to the first find of each failure class.
    Bench {
        #[arg(long, default_value_t = 5)]
        seeds: u64,
        /// Cap per seed and class.
        #[arg(long, default_value = "10s")]
        budget: String,
        /// Time per cell of the executions-per-second table.
        #[arg(long, default_value = "2s")]
        rate: String,
        /// The built `hunt` libFuzzer binary (`cargo fuzz build -s none hunt`): adds the
        /// `cargo fuzz run hunt` columns.
        #[arg(long)]
        cargo_fuzz: Option<PathBuf>,
        /// Only the executions-per-second tables (by op count and by raid type), no time to
        /// first find.
        #[arg(long)]
        rate_only: bool,
        /// Only this failure class in the time-to-first-find table (e.g. H5,
        /// stale-ctr-position), and no executions-per-second tables.
        #[arg(long)]
        class: Option<String>,
    },
    /// Run scenarios on a real kernel in a VM (conformance/) and compare with the model.
    Conform(conform::Conform),
    /// Turn a libFuzzer artifact (or any fuzz input) into scenario text.
    Import { artifact: PathBuf },
    /// Every patch gate of a kernel removed alone: which corpus scenarios and generated ones
    /// notice (the revert matrix); gates nothing notices alone are tried in pairs.
    RevertMatrix(gates::RevertMatrix),
    /// The minimal sets of patch gates a scenario's verdict depends on (removal turns a pass
    /// into a failure; addition turns a failure into a pass).
    Attribute(gates::Attribute),
    /// Try random schedules for a scenario until a run under KERNEL gets the wanted verdict;
    /// print the scenario with that schedule.
    Search {
        file: PathBuf,
        #[arg(short, long)]
        kernel: String,
        /// The verdict wanted, e.g. `hang` or `hang H1` or `invariant-violation`.
        #[arg(long)]
        want: String,
        #[arg(long, default_value_t = 2000)]
        tries: u32,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Length of the random schedule prefix at first (doubled every quarter of the tries, up
        /// to 8x).
        #[arg(long, default_value_t = 64)]
        len: usize,
    },
}

mod bench;
mod conform;
mod fuzz;
mod gates;

/// Bad input: reported on one line, exit status 2.
pub struct BadInput(anyhow::Error);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Kernels => {
            kernels();
            Ok(true)
        }
        Cmd::Replay {
            paths,
            kernels,
            timeline: Some(out),
            ..
        } => timeline(&paths, &kernels, &out),
        Cmd::Replay {
            paths,
            kernels,
            trace,
            json,
            timeline: None,
        } => replay(&paths, &kernels, trace, json),
        Cmd::Search {
            file,
            kernel,
            want,
            tries,
            seed,
            len,
        } => search(&file, &kernel, &want, tries, seed, len),
        Cmd::Fuzz { campaign, out } => fuzz::fuzz(&campaign, &out),
        Cmd::Minimize { file, kernel } => minimize(&file, &kernel),
        Cmd::Bench {
            seeds,
            budget,
            rate,
            cargo_fuzz,
            rate_only,
            class,
        } => match (fuzz::parse_duration(&budget), fuzz::parse_duration(&rate)) {
            (Some(b), Some(r)) => match bench::bench(
                seeds,
                b,
                r,
                cargo_fuzz.as_deref(),
                rate_only,
                class.as_deref(),
            ) {
                Ok(table) => {
                    print!("{table}");
                    Ok(true)
                }
                Err(e) => Err(bad(anyhow!("bench: {e}"))),
            },
            _ => Err(bad(anyhow!(
                "--budget / --rate: expected durations like 10s"
            ))),
        },
        Cmd::Import { artifact } => import(&artifact),
        Cmd::Conform(c) => conform::conform(&c),
        Cmd::RevertMatrix(c) => gates::revert_matrix_cmd(&c),
        Cmd::Attribute(c) => gates::attribute_cmd(&c),
    };
    match r {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mdfuzz: {:#}", e.0);
            ExitCode::from(2)
        }
    }
}

pub fn bad(e: impl Into<anyhow::Error>) -> BadInput {
    BadInput(e.into())
}

fn kernels() {
    println!("Named kernels:");
    for (n, d) in NAMED {
        println!("  {n:<10} {d}");
    }
    println!("\nPatches (add with +name, remove with -name; v2 = p1..p11; ranges like p1-p4):");
    for p in PATCHES {
        let series = match p.series {
            Series::Base => "v6.7 base",
            Series::V2 => "v2 series",
            Series::Merged68 => "merged 6.8",
            Series::Merged69 => "merged 6.9",
            Series::Later(r) => r,
            Series::Candidate => "candidate",
        };
        let note = if p.changes.is_empty() {
            format!("  [no behaviour modelled: {}]", p.note)
        } else {
            String::new()
        };
        println!("  {:<13} {:<11} {}{note}", p.name, series, p.title);
    }
    println!("\nExamples: v6.7+p1,p2,p3,p4   v6.7-c467e97f079f   v6.9-41425f96d7aa+p11   v7.3+f1");
}

fn load(path: &Path) -> Result<Scenario, BadInput> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))
        .map_err(bad)?;
    text::parse(&text).map_err(|e| bad(anyhow!("{}:{e}", path.display())))
}

fn scenario_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, BadInput> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(p)
                .with_context(|| format!("{}: cannot list", p.display()))
                .map_err(bad)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "scn"))
                .collect();
            v.sort();
            if v.is_empty() {
                return Err(bad(anyhow!(
                    "{}: no .scn files in this folder",
                    p.display()
                )));
            }
            out.extend(v);
        } else if p.exists() {
            out.push(p.clone());
        } else {
            return Err(bad(anyhow!("{}: no such file or folder", p.display())));
        }
    }
    Ok(out)
}

pub fn parse_kernel(name: &str) -> Result<Kernel, BadInput> {
    Kernel::parse(name).map_err(bad)
}

fn replay(
    paths: &[PathBuf],
    kernels: &[String],
    trace: bool,
    json: bool,
) -> Result<bool, BadInput> {
    let files = scenario_files(paths)?;
    let explicit: Vec<Kernel> = kernels
        .iter()
        .map(|k| parse_kernel(k))
        .collect::<Result<_, _>>()?;
    let mut scenarios = Vec::new();
    for f in &files {
        scenarios.push((f.clone(), load(f)?));
    }
    let opts = RunOptions {
        trace,
        ..RunOptions::default()
    };
    let mut all_ok = true;
    let (mut passed, mut failed) = (0, 0);
    if !json {
        println!(
            "{:<68} {:<22} {:<40} {:<28} ok",
            "scenario", "kernel", "verdict", "expected"
        );
    }
    for (f, s) in &scenarios {
        let ks: Vec<Kernel> = if explicit.is_empty() {
            let mut names: Vec<String> = DEFAULT_KERNELS.iter().map(|s| s.to_string()).collect();
            for e in &s.expects {
                if !names.contains(&e.kernel) {
                    names.push(e.kernel.clone());
                }
            }
            names
                .iter()
                .map(|n| parse_kernel(n))
                .collect::<Result<_, _>>()?
        } else {
            explicit.clone()
        };
        let name = f
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for k in &ks {
            let expect: Option<&Expect> = s.expects.iter().find(|e| e.kernel == k.name());
            let (verdict, token, detail, tr) = match run(s, k, &opts) {
                Ok(o) => (
                    o.verdict.name().to_string(),
                    o.token.clone(),
                    o.detail.clone(),
                    o.trace,
                ),
                Err(e) => ("model-error".to_string(), String::new(), e, Vec::new()),
            };
            let ok = match expect {
                Some(e) => {
                    e.verdict.name() == verdict && e.token.as_ref().is_none_or(|t| *t == token)
                }
                None => verdict != "model-error",
            };
            if ok {
                passed += 1;
            } else {
                failed += 1;
                all_ok = false;
            }
            let shown = if token.is_empty() {
                verdict.clone()
            } else {
                format!("{verdict} {token}")
            };
            let exp = expect
                .map(|e| {
                    format!(
                        "{}{}",
                        e.verdict,
                        e.token
                            .as_ref()
                            .map(|t| format!(" {t}"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "-".into());
            if json {
                let v = serde_json::json!({
                    "scenario": name, "kernel": k.name(), "verdict": verdict, "token": token,
                    "detail": detail, "expected": exp, "matches": ok,
                });
                println!("{v}");
            } else {
                println!(
                    "{:<68} {:<22} {:<40} {:<28} {}",
                    name,
                    k.name(),
                    shown,
                    exp,
                    if ok { "yes" } else { "NO" }
                );
                if !ok || verdict == "model-error" {
                    for l in detail.lines().take(20) {
                        println!("      {l}");
                    }
                }
            }
            if trace {
                println!("--- trace {name} under {}", k.name());
                for l in &tr {
                    println!("{l}");
                }
                if !detail.is_empty() {
                    println!("--- {shown}\n{detail}");
                }
            }
        }
    }
    if !json {
        println!("replay: {passed} passed, {failed} failed");
    }
    Ok(all_ok)
}

/// `replay FILE -k KERNEL --timeline OUT`: one traced run, drawn.
fn timeline(paths: &[PathBuf], kernels: &[String], out: &Path) -> Result<bool, BadInput> {
    let files = scenario_files(paths)?;
    let (file, kernel) = match (files.as_slice(), kernels) {
        ([f], [k]) => (f, parse_kernel(k)?),
        _ => {
            return Err(bad(anyhow!(
                "--timeline: expected one scenario file and one -k KERNEL, found {} file(s) and {} kernel(s)",
                files.len(),
                kernels.len()
            )))
        }
    };
    let html = match out.extension().and_then(|e| e.to_str()) {
        Some("svg") => false,
        Some("html") => true,
        _ => {
            return Err(bad(anyhow!(
                "--timeline {}: expected a file name ending in .svg or .html",
                out.display()
            )))
        }
    };
    let s = load(file)?;
    let opts = RunOptions {
        trace: true,
        ..RunOptions::default()
    };
    let o = run(&s, &kernel, &opts).map_err(|e| bad(anyhow!("model error: {e}")))?;
    let t = md_oracle::timeline::Timeline::from_trace(&o.trace, &o.short());
    let picture = t.svg();
    let body = if html {
        format!(
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{} under {}</title></head>\n<body>\n{picture}\n</body></html>\n",
            file.display(),
            kernel.name()
        )
    } else {
        picture
    };
    std::fs::write(out, body)
        .with_context(|| format!("{}: cannot write", out.display()))
        .map_err(bad)?;
    eprintln!(
        "{} under {}: {} ({} lanes, {} steps) -> {}",
        file.display(),
        kernel.name(),
        o.short(),
        t.lanes.len(),
        t.end,
        out.display()
    );
    Ok(true)
}

fn search(
    file: &Path,
    kernel: &str,
    want: &str,
    tries: u32,
    seed: u64,
    len: usize,
) -> Result<bool, BadInput> {
    let mut s = load(file)?;
    let k = parse_kernel(kernel)?;
    let want = Expect::parse_verdict(kernel, want).map_err(|e| bad(anyhow!("--want: {e}")))?;
    let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    // Short prefixes may never reach a late race: each quarter of the tries doubles the
    // prefix (64 -> 128 -> 256 -> 512 by default), up to 4,096 decisions.
    let len_at = |i: u32| (len << (i as u64 * 4 / tries.max(1) as u64).min(3)).min(4096);
    for i in 0..tries {
        let sched: Vec<u8> = (0..len_at(i))
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng >> 24) as u8
            })
            .collect();
        s.schedule = if i == 0 { Vec::new() } else { sched };
        match run(&s, &k, &RunOptions::default()) {
            Ok(o) if o.matches(&want) => {
                eprintln!("found after {} tries: {}", i + 1, o.short());
                print!("{s}");
                return Ok(true);
            }
            Ok(_) => {}
            Err(e) => return Err(bad(anyhow!("model error: {e}"))),
        }
    }
    eprintln!(
        "not found in {tries} tries (schedule prefixes of {} to {} decisions)",
        len_at(0),
        len_at(tries.saturating_sub(1))
    );
    Ok(false)
}

fn minimize(file: &Path, kernel: &str) -> Result<bool, BadInput> {
    let s = load(file)?;
    let k = parse_kernel(kernel)?;
    let o = run(&s, &k, &RunOptions::default()).map_err(|e| bad(anyhow!("model error: {e}")))?;
    let want = Expect {
        kernel: kernel.to_string(),
        verdict: o.verdict,
        token: Some(o.token.clone()),
    };
    let keep = md_oracle::campaign::same_verdict(&k, &want);
    let m = md_oracle::campaign::minimize(&s, &keep);
    eprintln!(
        "kept {} under {kernel}: {} -> {} ops, schedule {} -> {}",
        o.short(),
        s.ops.len(),
        m.ops.len(),
        s.schedule.len(),
        m.schedule.len()
    );
    print!("{m}");
    Ok(true)
}

fn import(artifact: &Path) -> Result<bool, BadInput> {
    let bytes = std::fs::read(artifact)
        .with_context(|| format!("{}: cannot read", artifact.display()))
        .map_err(bad)?;
    let s = md_oracle::gen::decode_input(&bytes);
    print!("# imported from {}\n{s}", artifact.display());
    Ok(true)
}
