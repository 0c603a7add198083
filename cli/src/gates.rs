//! `mdfuzz revert-matrix` and `mdfuzz attribute`: which patch gates the verdicts depend on.

use crate::{bad, load, parse_kernel, scenario_files, BadInput};
use anyhow::anyhow;
use md_oracle::gates::{attribute, revert_matrix, Attribution, Change, Direction};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RevertMatrix {
    /// The kernel whose gates are removed one at a time (v6.9 or v6.7+v2, or any kernel).
    #[arg(short, long, default_value = "v6.9")]
    pub kernel: String,
    /// Scenario files or folders replayed under each edited kernel.
    #[arg(long, default_values = ["corpus"])]
    pub corpus: Vec<PathBuf>,
    /// Generated scenarios run under the kernel and under each edited kernel (paired).
    #[arg(long, default_value_t = 3000)]
    pub execs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 2)]
    pub jobs: usize,
}

#[derive(clap::Args)]
pub struct Attribute {
    /// Scenario files or folders.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    #[arg(short, long)]
    pub kernel: String,
    /// Where gates to add come from when the verdict fails under KERNEL.
    #[arg(long, default_value = "v6.9")]
    pub from: String,
    /// Try every set of up to this many gates.
    #[arg(long, default_value_t = 2)]
    pub max_set: usize,
}

/// `pass -> hang H5 (3)`: the verdict changes, counted.
fn transitions(cs: &[Change]) -> String {
    let mut m: BTreeMap<(String, String), usize> = BTreeMap::new();
    for c in cs {
        *m.entry((c.reference.clone(), c.edited.clone()))
            .or_default() += 1;
    }
    m.iter()
        .map(|((a, b), n)| format!("{a} -> {b} ({n})"))
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn revert_matrix_cmd(c: &RevertMatrix) -> Result<bool, BadInput> {
    let k = parse_kernel(&c.kernel)?;
    if !(1..=1_000_000).contains(&c.execs) {
        return Err(bad(anyhow!(
            "--execs: expected 1 to 1000000 generated scenarios, found {}",
            c.execs
        )));
    }
    if !(1..=256).contains(&c.jobs) {
        return Err(bad(anyhow!("--jobs: expected 1 to 256, found {}", c.jobs)));
    }
    let mut corpus = Vec::new();
    for f in scenario_files(&c.corpus)? {
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        corpus.push((name, load(&f)?));
    }
    let progress = |m: &str| eprintln!("revert-matrix: {m}");
    let m = revert_matrix(&k, corpus, c.execs, c.seed, c.jobs, &progress)
        .map_err(|e| bad(anyhow!(e)))?;
    println!(
        "Revert matrix of {}: each gate removed alone; {} corpus scenarios and {} generated ones (seed {}), \
         each run under {} and, if its run consulted the gate, again without it.\n",
        m.kernel.name(),
        m.corpus,
        m.campaign,
        c.seed,
        m.kernel.name()
    );
    println!(
        "| gate | title | corpus: reached / changed | campaign: reached / changed | detected by |"
    );
    println!("|---|---|---|---|---|");
    for r in &m.rows {
        let by = if !r.corpus_changes.is_empty() {
            let names: Vec<&str> = r
                .corpus_changes
                .iter()
                .take(2)
                .map(|c| c.scenario.as_str())
                .collect();
            format!(
                "corpus: {}{}; {}",
                names.join(", "),
                if r.corpus_changes.len() > 2 {
                    ", ..."
                } else {
                    ""
                },
                transitions(&r.corpus_changes)
            )
        } else if !r.campaign_changes.is_empty() {
            format!("campaign only: {}", transitions(&r.campaign_changes))
        } else if !r.hidden_by.is_empty() {
            let h: Vec<String> = r
                .hidden_by
                .iter()
                .map(|(p, c)| {
                    format!(
                        "{} ({}: {} -> {})",
                        p.name, c.scenario, c.reference, c.edited
                    )
                })
                .collect();
            format!(
                "**not alone**; with one of these removed too: {}",
                h.join("; ")
            )
        } else if r.corpus_reached + r.campaign_reached == 0 {
            "**not detected**: no run reaches its gate".into()
        } else if r.differs > 0 {
            format!(
                "**not detected**: {} runs ran differently, no verdict changed",
                r.differs
            )
        } else {
            "**not detected**: reached, every run the same without it".into()
        };
        println!(
            "| {} | {} | {} / {} | {} / {} | {} |",
            r.patch.name,
            r.patch.title,
            r.corpus_reached,
            r.corpus_changes.len(),
            r.campaign_reached,
            r.campaign_changes.len(),
            by
        );
    }
    let silent: Vec<_> = m
        .kernel
        .patches()
        .iter()
        .filter(|p| p.changes.is_empty())
        .collect();
    if !silent.is_empty() {
        println!("\nNo behaviour modelled (the same kernel with or without them):");
        for p in silent {
            println!("- {} {}: {}", p.name, p.title, p.note);
        }
    }
    for r in m
        .rows
        .iter()
        .filter(|r| !r.detected() && r.hidden_by.is_empty())
    {
        if let Some(s) = &r.differing_example {
            println!(
                "\nA scenario that runs differently without {} (same verdict):\n",
                r.patch.name
            );
            for l in s.to_string().lines() {
                println!("    {l}");
            }
        }
    }
    let first = m
        .rows
        .iter()
        .find(|r| r.corpus_changes.is_empty() && r.campaign_example.is_some());
    if let Some(r) = first {
        println!(
            "\nA generated scenario that detects {} (no corpus scenario does):\n",
            r.patch.name
        );
        for l in r.campaign_example.as_ref().unwrap().to_string().lines() {
            println!("    {l}");
        }
    }
    Ok(true)
}

fn set_names(set: &[&md_model::kernel::Patch]) -> String {
    set.iter().map(|p| p.name).collect::<Vec<_>>().join(" + ")
}

fn print_attribution(name: &str, kernel: &str, from: &str, a: &Attribution) {
    let what = match (&a.direction, &a.target) {
        (Direction::Remove, _) => format!("removal from {kernel} makes it fail"),
        (Direction::Add, Some(t)) => format!("addition (from {from}) gives {from}'s `{t}`"),
        (Direction::Add, None) => {
            println!(
                "{name} under {kernel}: {} — the same under {from}: no patch of {from} changes it",
                a.outcome.short()
            );
            return;
        }
    };
    println!(
        "{name} under {kernel}: {} — minimal gate sets whose {what} ({} candidates, every set up to {} tried, {} runs):",
        a.outcome.short(),
        a.candidates.len(),
        a.exhaustive_to,
        a.runs
    );
    for (set, v) in &a.sets {
        println!("  {{{}}} -> {v}", set_names(set));
        for p in set {
            println!("      {}  {}", p.name, p.title);
        }
    }
    if let Some((set, v)) = &a.ddmin {
        println!("  {{{}}} -> {v}   (by delta debugging)", set_names(set));
    }
    if a.sets.is_empty() && a.ddmin.is_none() {
        println!(
            "  none: no set of up to {} gates flips it, nor all {} together",
            a.exhaustive_to,
            a.candidates.len()
        );
    }
}

pub fn attribute_cmd(c: &Attribute) -> Result<bool, BadInput> {
    let k = parse_kernel(&c.kernel)?;
    let from = parse_kernel(&c.from)?;
    if !(1..=4).contains(&c.max_set) {
        return Err(bad(anyhow!(
            "--max-set: expected 1 to 4 gates, found {}",
            c.max_set
        )));
    }
    for f in scenario_files(&c.paths)? {
        let s = load(&f)?;
        let name = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let a = attribute(&s, &k, &from, c.max_set).map_err(|e| bad(anyhow!("{name}: {e}")))?;
        print_attribution(&name, k.name(), from.name(), &a);
    }
    Ok(true)
}
