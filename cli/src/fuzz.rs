//! `mdfuzz fuzz`: an in-process campaign (no cargo-fuzz needed).

use crate::{bad, parse_kernel, BadInput};
use anyhow::anyhow;
use indicatif::{ProgressBar, ProgressStyle};
use md_model::Kernel;
use md_oracle::campaign::{check, kernels_for, minimize, Failure, Target};
pub use md_oracle::gen::Rng;
use md_oracle::gen::{from_bytes, Limits};
use md_oracle::scenario::{Expect, Scenario, VerdictKind};
use md_oracle::{run, RunOptions};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn parse_duration(s: &str) -> Option<Duration> {
    let (num, mul) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    // At most a week: a budget beyond that is a typo (and 1e400 is no duration at all).
    num.parse::<f64>()
        .ok()
        .filter(|v| *v >= 0.0)
        .and_then(|v| Duration::try_from_secs_f64(v * mul).ok())
        .filter(|d| *d <= Duration::from_secs(7 * 24 * 3600))
}

#[derive(Default)]
struct Stats {
    execs: u64,
    runs: u64,
    verdicts: BTreeMap<String, u64>,
    /// With `--reference`: per kernel (the checked ones and the reference), verdict counts.
    by_kernel: BTreeMap<String, BTreeMap<String, u64>>,
    failures: BTreeMap<String, (Scenario, Failure)>,
}

/// The key of the reference kernel's counts (apart from a checked kernel of the same name).
const REFERENCE: &str = " reference";

/// A verdict whose count under `kernel` jumped against the reference's on the same
/// scenarios: more than twice as many, and more than three standard deviations (Poisson)
/// above it. Known findings too: a regression that ends the same way as a known finding
/// shows as a jump in its rate even where the filter hides each single run.
pub fn rate_jumps(
    kernel: &BTreeMap<String, u64>,
    reference: &BTreeMap<String, u64>,
) -> Vec<(String, u64, u64)> {
    kernel
        .iter()
        .filter(|(v, _)| !v.starts_with("pass"))
        .filter_map(|(v, &n)| {
            let r = reference.get(v).copied().unwrap_or(0);
            let jump = n > 2 * r && (n - r) as f64 > 3.0 * ((r + 1) as f64).sqrt();
            jump.then(|| (v.clone(), n, r))
        })
        .collect()
}

/// The command line of a campaign.
#[derive(clap::Args)]
pub struct Campaign {
    /// postfix, differential or hunt.
    #[arg(long, default_value = "hunt")]
    pub target: String,
    /// The kernel `hunt` hunts; for `postfix`, the one post-fix kernel to check instead of
    /// v6.7+v2 and v6.9 (e.g. v7.3, v6.9+f1).
    #[arg(short, long, default_value = "v6.7")]
    pub kernel: String,
    /// How long (e.g. 30s, 2m), the minimization of what is found included: once something
    /// failed, the search stops at three quarters of it.
    #[arg(long, default_value = "60s")]
    pub time: String,
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, default_value_t = 24)]
    pub max_ops: usize,
    /// Stop after this many scenarios (whichever of --time / --execs comes first).
    #[arg(long)]
    pub execs: Option<u64>,
    /// Also save (minimized) the first scenario whose verdict is this one, known finding or
    /// not (e.g. "corruption stale-ctr-position"): to look at what a count stands for.
    #[arg(long)]
    pub keep: Option<String>,
    /// One administrator per LV (lvm only). By default a dm LV gets a second one
    /// (`dmsetup message` / `status` from another process) one time in three.
    #[arg(long)]
    pub single_admin: bool,
    /// Swarm testing: each scenario draws the subset of op kinds it uses (others are redrawn),
    /// so combinations of a few kinds are generated densely
    #[arg(long)]
    pub swarm: bool,
    /// Also run every scenario under this kernel and compare the verdict rates: a verdict
    /// (known finding or not) that is much more frequent under a checked kernel than under
    /// the reference is reported as a rate jump (a failure of the campaign).
    #[arg(long)]
    pub reference: Option<String>,
}

pub fn fuzz(c: &Campaign, out: &Path) -> Result<bool, BadInput> {
    let (seed, jobs, limit) = (c.seed, c.jobs, c.execs.unwrap_or(u64::MAX));
    let target = Target::parse(&c.target).ok_or_else(|| {
        bad(anyhow!(
            "--target: expected postfix, differential or hunt, found `{}`",
            c.target
        ))
    })?;
    let hunted = parse_kernel(&c.kernel)?;
    let reference = c.reference.as_deref().map(parse_kernel).transpose()?;
    let budget = parse_duration(&c.time).ok_or_else(|| {
        bad(anyhow!(
            "--time: expected a duration like 30s or 2m (at most 7 days), found `{}`",
            md_oracle::text::cut(&c.time)
        ))
    })?;
    if !(1..=256).contains(&c.max_ops) {
        return Err(bad(anyhow!(
            "--max-ops: expected 1 to 256 ops per scenario, found {}",
            c.max_ops
        )));
    }
    if !(1..=256).contains(&c.jobs) {
        return Err(bad(anyhow!("--jobs: expected 1 to 256, found {}", c.jobs)));
    }
    let keep = c
        .keep
        .as_deref()
        .map(|v| md_oracle::scenario::Expect::parse_verdict(&c.kernel, v))
        .transpose()
        .map_err(|e| bad(anyhow!("--keep: {e}")))?;
    let lim = Limits {
        max_ops: c.max_ops.max(1),
        max_schedule: 64,
        multi_admin: !c.single_admin,
        swarm: c.swarm,
    };
    let stats = Arc::new(Mutex::new(Stats::default()));
    let start = Instant::now();
    let pb = ProgressBar::new_spinner();
    pb.set_style(ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}").unwrap());
    let handles: Vec<_> = (0..jobs.max(1))
        .map(|j| {
            let (stats, hunted, keep) = (stats.clone(), hunted.clone(), keep.clone());
            let reference = reference.clone();
            std::thread::spawn(move || {
                let mut rng = Rng((seed.wrapping_add(j as u64 * 0x9e37_79b9))
                    .wrapping_mul(0x2545_f491_4f6c_dd1d)
                    | 1);
                // Once something failed, the last quarter of --time is left for minimizing.
                let search_ends = |st: &Stats| {
                    if st.failures.is_empty() {
                        budget
                    } else {
                        budget * 3 / 4
                    }
                };
                while {
                    let st = stats.lock().unwrap();
                    start.elapsed() < search_ends(&st) && st.execs < limit
                } {
                    let s = from_bytes(&rng.bytes(), lim);
                    let (outs, fail) = check(target, &hunted, &s);
                    let ref_out = reference
                        .as_ref()
                        .and_then(|r| run(&s, r, &RunOptions::default()).ok());
                    let mut st = stats.lock().unwrap();
                    if let Some(o) = &ref_out {
                        let e = st.by_kernel.entry(REFERENCE.to_string()).or_default();
                        *e.entry(o.short()).or_default() += 1;
                        for (o, k) in outs.iter().zip(kernels_for(target, &hunted)) {
                            let e = st.by_kernel.entry(k.name().to_string()).or_default();
                            *e.entry(o.short()).or_default() += 1;
                        }
                    }
                    st.execs += 1;
                    st.runs += outs.len() as u64;
                    let ks = kernels_for(target, &hunted);
                    for (o, k) in outs.iter().zip(&ks) {
                        *st.verdicts.entry(o.short()).or_default() += 1;
                        if keep.as_ref().is_some_and(|e| o.matches(e)) {
                            let signature = format!("kept {} {}", k.name(), o.short());
                            st.failures.entry(signature.clone()).or_insert_with(|| {
                                let why = format!("{} under {} (kept)", o.short(), k.name());
                                let f = Failure {
                                    kernel: k.name().to_string(),
                                    outcome: o.clone(),
                                    signature,
                                    why,
                                };
                                (s.clone(), f)
                            });
                        }
                    }
                    if let Some(f) = fail {
                        if !st.failures.contains_key(&f.signature) {
                            st.failures.insert(f.signature.clone(), (s, f));
                        }
                    }
                }
            })
        })
        .collect();
    while handles.iter().any(|h| !h.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        let st = stats.lock().unwrap();
        let secs = start.elapsed().as_secs_f64().max(0.001);
        let v: Vec<String> = st
            .verdicts
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        pb.set_message(format!(
            "execs {} ({:.0}/s, {:.0} runs/s) | {} | failures: {}",
            st.execs,
            st.execs as f64 / secs,
            st.runs as f64 / secs,
            v.join(", "),
            st.failures.len()
        ));
    }
    for h in handles {
        let _ = h.join();
    }
    pb.finish_and_clear();
    let st = stats.lock().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz {:?} (kernel {}): {} executions, {} runs in {:.1}s ({:.0} execs/s)",
        target,
        hunted.name(),
        st.execs,
        st.runs,
        secs,
        st.execs as f64 / secs.max(0.001)
    );
    for (k, n) in &st.verdicts {
        println!("  {k:<22} {n}");
    }
    let mut jumps = 0;
    if let Some(r) = &reference {
        let empty = BTreeMap::new();
        let rv = st.by_kernel.get(REFERENCE).unwrap_or(&empty);
        println!("reference {}: {rv:?}", r.name());
        for k in kernels_for(target, &hunted) {
            if k.name() == r.name() {
                continue;
            }
            let kv = st.by_kernel.get(k.name()).unwrap_or(&empty);
            for (v, n, rn) in rate_jumps(kv, rv) {
                println!(
                    "rate jump [{} {v}]: {n} runs under {}, {rn} under the reference {}",
                    k.name(),
                    k.name(),
                    r.name()
                );
                jumps += 1;
            }
        }
    }
    if st.failures.is_empty() && jumps == 0 {
        println!("no failures");
        return Ok(true);
    }
    if st.failures.is_empty() {
        return Ok(false);
    }
    std::fs::create_dir_all(out).map_err(|e| bad(anyhow!("{}: {e}", out.display())))?;
    // Minimizing what was found stays within --time too (what is left of it).
    let deadline = start + budget;
    for (sig, (s, f)) in st.failures.iter() {
        let saved = save_finding(out, target, &hunted, s, f, deadline).map_err(bad)?;
        println!("new failure [{sig}]: {} -> {}", f.why, saved);
    }
    Ok(false)
}

/// Minimizes a failing scenario (same verdict under the failing kernel) and writes it with a
/// comment and the verdict of every named kernel as its expectations.
fn save_finding(
    out: &Path,
    target: Target,
    hunted: &Kernel,
    s: &Scenario,
    f: &Failure,
    deadline: Instant,
) -> anyhow::Result<String> {
    let k = Kernel::parse(&f.kernel).map_err(|e| anyhow!(e.0))?;
    let want = Expect {
        kernel: f.kernel.clone(),
        verdict: f.outcome.verdict,
        token: Some(f.outcome.token.clone()),
    };
    let cut = std::cell::Cell::new(false);
    let keep = |c: &Scenario| {
        if Instant::now() >= deadline {
            cut.set(true);
            return false;
        }
        run(c, &k, &RunOptions::default()).is_ok_and(|o| o.matches(&want))
    };
    let mut m = minimize(s, &keep);
    m.comments = vec![
        format!(
            "Found by `mdfuzz fuzz --target {target:?}` (kernel {}): {}.",
            hunted.name(),
            f.why
        )
        .to_lowercase(),
        if cut.get() {
            "Minimized until the --time budget ran out (`mdfuzz minimize` shrinks it further); \
             the expect lines are what each kernel did when it was saved."
                .into()
        } else {
            "Minimized; the expect lines are what each kernel did when it was saved.".into()
        },
    ];
    let mut names: Vec<String> = kernels_for(Target::Differential, hunted)
        .iter()
        .map(|k| k.name().to_string())
        .collect();
    if !names.contains(&f.kernel) {
        names.push(f.kernel.clone());
    }
    m.expects.clear();
    for n in names {
        let kk = Kernel::parse(&n).map_err(|e| anyhow!(e.0))?;
        if let Ok(o) = run(&m, &kk, &RunOptions::default()) {
            let token = (!o.token.is_empty()).then(|| o.token.clone());
            m.expects.push(Expect {
                kernel: n,
                verdict: o.verdict,
                token,
            });
        }
    }
    let file: String = f
        .signature
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let path = out.join(format!("{file}.scn"));
    std::fs::write(&path, m.to_string())?;
    let _ = VerdictKind::Pass;
    Ok(path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::rate_jumps;
    use std::collections::BTreeMap;

    fn counts(v: &[(&str, u64)]) -> BTreeMap<String, u64> {
        v.iter().map(|(k, n)| (k.to_string(), *n)).collect()
    }

    #[test]
    fn a_known_finding_that_becomes_far_more_frequent_is_a_jump() {
        let reference = counts(&[("pass", 9000), ("corruption stale-ctr-position", 20)]);
        // Noise: 30 against 20 is no jump; 80 against 20 is, known token or not.
        let same = counts(&[("pass", 8990), ("corruption stale-ctr-position", 30)]);
        assert!(rate_jumps(&same, &reference).is_empty());
        let more = counts(&[("pass", 8940), ("corruption stale-ctr-position", 80)]);
        assert_eq!(
            rate_jumps(&more, &reference),
            [("corruption stale-ctr-position".to_string(), 80, 20)]
        );
        // A verdict the reference never showed: a jump once it is above noise (3 sigma of 1).
        let new = counts(&[("hang H5", 4)]);
        assert_eq!(rate_jumps(&new, &reference).len(), 1);
        assert!(rate_jumps(&counts(&[("hang H5", 3)]), &reference).is_empty());
        // More passes are never a jump.
        assert!(rate_jumps(&counts(&[("pass eio", 900)]), &reference).is_empty());
    }
}
