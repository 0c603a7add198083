//! Which patch gates a verdict depends on.
//!
//! * [`revert_matrix`]: every gate of a kernel removed alone, judged by the corpus and by a
//!   paired campaign (the same generated scenarios under the kernel and under the kernel
//!   without the gate): a gate is detected when some verdict changes.
//! * [`attribute`]: the minimal sets of gates whose removal turns a pass into a failure, or
//!   whose addition turns a failure into a pass.
//!
//! Both lean on determinism: a run that never consults a change's gate (`Kernel::reached`)
//! runs step for step the same without that change, so it is not run again.

use crate::gen::{from_bytes, Limits, Rng};
use crate::runner::{run, RunOptions};
use crate::scenario::{Scenario, VerdictKind};
use crate::verdict::Outcome;
use md_model::kernel::Patch;
use md_model::Kernel;

/// The patches of `k` with modelled behaviour.
pub fn gates(k: &Kernel) -> Vec<&'static Patch> {
    k.patches()
        .iter()
        .copied()
        .filter(|p| !p.changes.is_empty())
        .collect()
}

/// The changes `edited` lacks or adds against `k`: a run of `k` that consulted none of them
/// runs the same under `edited`.
fn delta(k: &Kernel, edited: &Kernel) -> u64 {
    k.change_mask() ^ edited.change_mask()
}

fn run_ok(s: &Scenario, k: &Kernel) -> Result<Outcome, String> {
    run(s, k, &RunOptions::default()).map_err(|e| format!("model error under {}: {e}", k.name()))
}

/// `f` over `items` on `jobs` threads, results in order.
fn par_map<T: Sync, R: Send>(items: &[T], jobs: usize, f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let jobs = jobs.clamp(1, items.len().max(1));
    let chunk = items.len().div_ceil(jobs).max(1);
    std::thread::scope(|sc| {
        let hs: Vec<_> = items
            .chunks(chunk)
            .map(|c| sc.spawn(|| c.iter().map(&f).collect::<Vec<R>>()))
            .collect();
        hs.into_iter()
            .flat_map(|h| h.join().expect("worker"))
            .collect()
    })
}

/// One scenario's verdict under the reference kernel and under an edited one.
#[derive(Clone, Debug)]
pub struct Change {
    pub scenario: String,
    pub reference: String,
    pub edited: String,
}

/// One row of the revert matrix.
pub struct Row {
    pub patch: &'static Patch,
    /// Corpus scenarios whose reference run consulted the gate, and the verdicts that changed.
    pub corpus_reached: usize,
    pub corpus_changes: Vec<Change>,
    /// Runs (corpus and campaign) that ran differently with the same verdict, and the first
    /// such scenario (to see what the gate changes when no verdict notices).
    pub differs: usize,
    pub differing_example: Option<Scenario>,
    /// The same for the campaign's generated scenarios (named `gen#N`).
    pub campaign_reached: usize,
    pub campaign_changes: Vec<Change>,
    /// The first changed campaign scenario, to look at.
    pub campaign_example: Option<Scenario>,
    /// For a gate no corpus verdict notices alone: the gates whose removal together with
    /// this one changes a corpus verdict that neither removal changes alone (one scenario each).
    pub hidden_by: Vec<(&'static Patch, Change)>,
}

impl Row {
    pub fn detected(&self) -> bool {
        !self.corpus_changes.is_empty() || !self.campaign_changes.is_empty()
    }
}

pub struct Matrix {
    pub kernel: Kernel,
    pub corpus: usize,
    pub campaign: usize,
    pub rows: Vec<Row>,
}

struct Reference {
    name: String,
    scenario: Scenario,
    outcome: Outcome,
}

fn references(
    named: Vec<(String, Scenario)>,
    k: &Kernel,
    jobs: usize,
) -> Result<Vec<Reference>, String> {
    par_map(&named, jobs, |(name, s)| {
        run_ok(s, k).map(|outcome| Reference {
            name: name.clone(),
            scenario: s.clone(),
            outcome,
        })
    })
    .into_iter()
    .collect()
}

/// What removing (or adding) gates did to a set of reference runs.
struct Delta {
    /// Runs that consulted a changed gate (the others run the same and are not rerun).
    reached: usize,
    /// Runs whose verdict changed (with the run's index).
    changed: Vec<(Change, usize)>,
    /// Runs with the same verdict that ran differently (other steps, op results or actions).
    differs: usize,
    /// The first of those.
    first_differing: Option<usize>,
}

fn same_run(a: &Outcome, b: &Outcome) -> bool {
    a.steps == b.steps && a.op_results == b.op_results && a.op_actions == b.op_actions
}

/// The scenarios of `refs` whose verdict changes under `edited` (only those whose reference
/// run consulted a changed gate are run).
fn changes(refs: &[Reference], k: &Kernel, edited: &Kernel, jobs: usize) -> Result<Delta, String> {
    let d = delta(k, edited);
    let reached: Vec<(usize, &Reference)> = refs
        .iter()
        .enumerate()
        .filter(|(_, r)| r.outcome.gates_reached & d != 0)
        .collect();
    let outs = par_map(&reached, jobs, |(i, r)| {
        run_ok(&r.scenario, edited).map(|o| (*i, o))
    });
    let mut out = Vec::new();
    let (mut differs, mut first_differing) = (0, None);
    for o in outs {
        let (i, o) = o?;
        let r = &refs[i];
        if o.short() == r.outcome.short() {
            if !same_run(&o, &r.outcome) {
                differs += 1;
                first_differing.get_or_insert(i);
            }
        } else {
            out.push((
                Change {
                    scenario: r.name.clone(),
                    reference: r.outcome.short(),
                    edited: o.short(),
                },
                i,
            ));
        }
    }
    Ok(Delta {
        reached: reached.len(),
        changed: out,
        differs,
        first_differing,
    })
}

/// The revert matrix of `k`: each gate removed alone, against `corpus` (named scenarios) and
/// `campaign` generated scenarios (seeded: the same matrix on every machine); then, for the
/// gates no corpus scenario notices alone, the gates that cover them in the corpus.
pub fn revert_matrix(
    k: &Kernel,
    corpus: Vec<(String, Scenario)>,
    campaign: usize,
    seed: u64,
    jobs: usize,
    progress: &dyn Fn(&str),
) -> Result<Matrix, String> {
    let n_corpus = corpus.len();
    let corpus = references(corpus, k, jobs)?;
    let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
    let generated: Vec<(String, Scenario)> = (0..campaign)
        .map(|i| {
            (
                format!("gen#{i}"),
                from_bytes(&rng.bytes(), Limits::default()),
            )
        })
        .collect();
    progress(&format!("reference runs under {}", k.name()));
    let generated = references(generated, k, jobs)?;
    let mut rows = Vec::new();
    // Which corpus scenarios (by index: names repeat across folders) each removal changes.
    let mut changed_alone: Vec<Vec<usize>> = Vec::new();
    for p in gates(k) {
        progress(&format!("{} without {}", k.name(), p.name));
        let edited = k.edit(&[p], &[]);
        let c = changes(&corpus, k, &edited, jobs)?;
        let g = changes(&generated, k, &edited, jobs)?;
        changed_alone.push(c.changed.iter().map(|(_, i)| *i).collect());
        rows.push(Row {
            patch: p,
            corpus_reached: c.reached,
            corpus_changes: c.changed.into_iter().map(|(c, _)| c).collect(),
            differs: c.differs + g.differs,
            differing_example: c
                .first_differing
                .map(|i| corpus[i].scenario.clone())
                .or_else(|| g.first_differing.map(|i| generated[i].scenario.clone())),
            campaign_reached: g.reached,
            campaign_example: g
                .changed
                .first()
                .map(|(_, i)| generated[*i].scenario.clone()),
            campaign_changes: g.changed.into_iter().map(|(c, _)| c).collect(),
            hidden_by: Vec::new(),
        });
    }
    // Pairs: a gate no corpus verdict notices alone may be covered by another: some verdict
    // changes without both, and changes neither without the one nor without the other.
    // (A gate no corpus run reaches cannot be covered in the corpus either.)
    let quiet: Vec<usize> = (0..rows.len())
        .filter(|&i| rows[i].corpus_changes.is_empty() && rows[i].corpus_reached > 0)
        .collect();
    for &i in &quiet {
        for j in (0..rows.len()).filter(|&j| j != i) {
            let (p, q) = (rows[i].patch, rows[j].patch);
            progress(&format!("{} without {} and {}", k.name(), p.name, q.name));
            let both = changes(&corpus, k, &k.edit(&[p, q], &[]), jobs)?.changed;
            if let Some((c, _)) = both
                .into_iter()
                .find(|(_, ix)| !changed_alone[j].contains(ix))
            {
                rows[i].hidden_by.push((q, c));
            }
        }
    }
    Ok(Matrix {
        kernel: k.clone(),
        corpus: n_corpus,
        campaign,
        rows,
    })
}

/// Which way [`attribute`] searched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The verdict passes: sets of the kernel's gates whose removal makes it fail.
    Remove,
    /// The verdict fails: sets of gates (from the `from` kernel) whose addition makes it pass.
    Add,
}

pub struct Attribution {
    pub outcome: Outcome,
    pub direction: Direction,
    /// The candidate gates searched.
    pub candidates: Vec<&'static Patch>,
    /// Minimal sets that flip the verdict, smallest first; each with the verdict it gets.
    pub sets: Vec<(Vec<&'static Patch>, String)>,
    /// What an `Add` search aims at: the verdict under the `from` kernel (None: the same as
    /// under the kernel, so there is nothing to attribute).
    pub target: Option<String>,
    /// Every set up to this size was tried.
    pub exhaustive_to: usize,
    /// A minimal set larger than `exhaustive_to`, found by delta debugging (when no smaller
    /// one flips the verdict).
    pub ddmin: Option<(Vec<&'static Patch>, String)>,
    pub runs: usize,
}

fn failed(o: &Outcome) -> bool {
    o.verdict != VerdictKind::Pass
}

/// The minimal sets of patch gates a verdict of `s` under `k` depends on: when it passes,
/// the sets of `k`'s gates whose removal makes it fail; when it fails, the sets of `from`'s
/// gates (those `k` lacks) whose addition gives the verdict `from` gives (a pass, or the
/// fixed kernel's own failure: a v6.7 hang that v6.9 turns into a corruption is attributed
/// to the patches that make it that corruption). Every set up to `max_set` gates is
/// tried (minimal: no superset of a found set is reported); when none flips it, delta
/// debugging from the whole candidate set finds one minimal set.
pub fn attribute(
    s: &Scenario,
    k: &Kernel,
    from: &Kernel,
    max_set: usize,
) -> Result<Attribution, String> {
    let outcome = run_ok(s, k)?;
    let direction = if failed(&outcome) {
        Direction::Add
    } else {
        Direction::Remove
    };
    let candidates: Vec<&'static Patch> = match direction {
        Direction::Remove => gates(k),
        // A patch whose changes `k` already carries (p1 against 1baae052cccd) adds nothing.
        Direction::Add => gates(from)
            .into_iter()
            .filter(|p| p.mask() & !k.change_mask() != 0)
            .collect(),
    };
    let edit = |set: &[&'static Patch]| match direction {
        Direction::Remove => k.edit(set, &[]),
        Direction::Add => k.edit(&[], set),
    };
    let target = match direction {
        Direction::Remove => None,
        Direction::Add => Some(run_ok(s, from)?.short()).filter(|t| *t != outcome.short()),
    };
    let mut runs = 0;
    // Some(verdict) when `set` flips the verdict.
    let mut flips = |set: &[&'static Patch]| -> Result<Option<String>, String> {
        let e = edit(set);
        if outcome.gates_reached & delta(k, &e) == 0 {
            return Ok(None);
        }
        runs += 1;
        let o = run_ok(s, &e)?;
        let flipped = match &target {
            None => failed(&o) && !failed(&outcome),
            Some(t) => o.short() == *t,
        };
        Ok(flipped.then(|| o.short()))
    };
    if direction == Direction::Add && target.is_none() {
        return Ok(Attribution {
            outcome,
            direction,
            candidates,
            sets: Vec::new(),
            target,
            exhaustive_to: 0,
            ddmin: None,
            runs,
        });
    }
    let mut sets: Vec<(Vec<&'static Patch>, String)> = Vec::new();
    let n = candidates.len();
    for size in 1..=max_set.min(n) {
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            let set: Vec<&'static Patch> = idx.iter().map(|&i| candidates[i]).collect();
            let covered = sets
                .iter()
                .any(|(f, _)| f.iter().all(|p| set.iter().any(|q| q.name == p.name)));
            if !covered {
                if let Some(v) = flips(&set)? {
                    sets.push((set, v));
                }
            }
            // Next combination of `size` out of `n`.
            let Some(i) = (0..size).rev().find(|&i| idx[i] < n - size + i) else {
                break;
            };
            idx[i] += 1;
            for j in i + 1..size {
                idx[j] = idx[j - 1] + 1;
            }
        }
    }
    let mut ddmin = None;
    if sets.is_empty() && n > max_set {
        if let Some(v) = flips(&candidates)? {
            let mut set = candidates.clone();
            let mut verdict = v;
            // ddmin with complements: drop chunks while the verdict still flips.
            let mut parts = 2;
            while set.len() >= 2 {
                let chunk = set.len().div_ceil(parts);
                let mut found = None;
                for c in 0..parts {
                    let rest: Vec<&'static Patch> = set
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| i / chunk != c)
                        .map(|(_, p)| *p)
                        .collect();
                    if rest.len() == set.len() || rest.is_empty() {
                        continue;
                    }
                    if let Some(v) = flips(&rest)? {
                        found = Some((rest, v));
                        break;
                    }
                }
                match found {
                    Some((rest, v)) => {
                        set = rest;
                        verdict = v;
                        parts = (parts - 1).max(2);
                    }
                    None if parts >= set.len() => break,
                    None => parts = (parts * 2).min(set.len()),
                }
            }
            ddmin = Some((set, verdict));
        }
    }
    Ok(Attribution {
        outcome,
        direction,
        candidates,
        sets,
        target,
        exhaustive_to: max_set.min(n),
        ddmin,
        runs,
    })
}
