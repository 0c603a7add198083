//! Patch attribution and the revert matrix: the sets they report, and the determinism they
//! lean on (a run that never consults a gate runs the same without it).

use md_model::Kernel;
use md_oracle::gates::{attribute, gates, revert_matrix, Direction};
use md_oracle::gen::{from_bytes, Limits, Rng};
use md_oracle::{run, text, RunOptions, Scenario};

fn corpus_file(name: &str) -> Scenario {
    let p = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../corpus")
        .join(name);
    text::parse(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

const H2: &str = "h2-read-only-array-never-reaped.md-sysfs.scn";

fn names(sets: &[(Vec<&'static md_model::kernel::Patch>, String)]) -> Vec<String> {
    sets.iter()
        .map(|(s, v)| {
            let n: Vec<&str> = s.iter().map(|p| p.name).collect();
            format!("{} -> {v}", n.join("+"))
        })
        .collect()
}

#[test]
fn h2_is_fixed_by_p4_alone_or_by_p2_with_p3() {
    let s = corpus_file(H2);
    let v67 = Kernel::parse("v6.7").unwrap();
    let v69 = Kernel::parse("v6.9").unwrap();
    let a = attribute(&s, &v67, &v69, 2).unwrap();
    assert_eq!(a.direction, Direction::Add);
    assert_eq!(a.outcome.short(), "hang H3");
    assert_eq!(
        names(&a.sets),
        ["ad39c08186f8 -> pass", "55a48ad2db64+82ec0ae59d02 -> pass"]
    );
    // And from v6.9 down: H2 comes back only without both p2 and p4.
    let a = attribute(&s, &v69, &v69, 2).unwrap();
    assert_eq!(a.direction, Direction::Remove);
    assert_eq!(
        names(&a.sets),
        [
            "55a48ad2db64+ad39c08186f8 -> hang H2",
            "82ec0ae59d02+ad39c08186f8 -> hang H3"
        ]
    );
}

#[test]
fn a_gate_no_corpus_verdict_notices_alone_is_listed_with_the_gate_that_covers_it() {
    let corpus = vec![(H2.to_string(), corpus_file(H2))];
    let v69 = Kernel::parse("v6.9").unwrap();
    let m = revert_matrix(&v69, corpus, 0, 1, 1, &|_| {}).unwrap();
    let row = |n: &str| m.rows.iter().find(|r| r.patch.name == n).unwrap();
    assert!(row("ad39c08186f8").corpus_changes.is_empty());
    let hidden: Vec<&str> = row("55a48ad2db64")
        .hidden_by
        .iter()
        .map(|(p, _)| p.name)
        .collect();
    assert_eq!(hidden, ["ad39c08186f8"]);
    let (_, c) = &row("55a48ad2db64").hidden_by[0];
    assert_eq!(
        (c.reference.as_str(), c.edited.as_str()),
        ("pass", "hang H2")
    );
    // Gates without modelled behaviour are not rows.
    assert!(m.rows.iter().all(|r| !r.patch.changes.is_empty()));
}

/// The revert matrix and `attribute` skip a run that never consulted a removed gate; that is
/// sound only if every behavioural difference goes through `Kernel::has`.
#[test]
fn a_run_that_never_consults_a_gate_runs_the_same_without_it() {
    let v69 = Kernel::parse("v6.9").unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut checked = 0;
    for _ in 0..120 {
        let s = from_bytes(&rng.bytes_n(256), Limits::default());
        let o = run(&s, &v69, &RunOptions::default()).unwrap();
        for p in gates(&v69) {
            if o.gates_reached & p.mask() != 0 {
                continue;
            }
            let e = run(&s, &v69.edit(&[p], &[]), &RunOptions::default()).unwrap();
            assert_eq!(
                (e.short(), e.steps, &e.op_results),
                (o.short(), o.steps, &o.op_results),
                "{} without {} ran differently though its gate was never consulted:\n{s}",
                v69.name(),
                p.name
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} skippable runs checked");
}
